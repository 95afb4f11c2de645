"""The audit log (SPEC "Decisions and the audit log"): who asked for what, and what
they were told.

Every entitlement decision and every mutation request, allowed or denied, becomes
one entry of its account's audit chain. The chain is separate from the ledger: the
ledger records what changed, the audit log records who asked, including the
requests that changed nothing because they were refused.

An entry is canonical JSON (RFC 8785) that names the hash of the entry before it
(``prev``); its own hash is ``SHA-256("tenure.audit.v1\\n" || entry)``. The
account's head row holds the size and last hash of the chain, so removing, editing
or reordering entries, or truncating the chain behind the head, breaks
verification. Entries that answer a mutation also name the ledger events it
appended (``events: [first_seq, count]``); ``verify`` checks that those ranges
cover the ledger without gaps up to its head, so the audit log cannot lose the
record of a change that the signed ledger proves happened.

Entries hold no personal data: principals are API key ids, licenses appear by
serial, customers by id, and an unknown credential or license key only by a short
hash. Request bodies (customer names, e-mail addresses) are never written here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import orjson
import sqlalchemy as sa

from tenure.canonical import canonical_json
from tenure.domain.storable import first_unstorable, text_problem
from tenure.errors import AuditTampered, InvalidInput
from tenure.store import columns, raw
from tenure.store import tables as t

GENESIS = bytes(32)
"""The ``prev`` of an account's first entry."""
DOMAIN = b"tenure.audit.v1\n"
OUTCOMES = ("allowed", "denied")
MAX_PAGE = 500
_VERIFY_CHUNK = 2000


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audited request, before the chain gives it a place (seq, time, prev)."""

    account: str
    principal: str
    """An API key id (``key_…``), ``license:<serial>``, or an internal actor."""
    role: str
    auth: str
    """How the principal authenticated: ``api_key``, ``license``, ``internal``."""
    action: str
    """What was asked: a command or route name such as ``suspend_license``, ``check``."""
    outcome: str
    """``allowed`` or ``denied``."""
    code: str
    """Why: ``ok``, ``replayed``, a decision reason code or a problem type code."""
    target: str | None = None
    """The object asked about: a serial, customer id, key id or plan code."""
    rationale: str | None = None
    """The reason the principal gave (revoke, suspend, override, …)."""
    events: tuple[int, int] | None = None
    """``(first_seq, count)`` of the ledger events the request appended."""
    detail: Mapping[str, Any] | None = None
    """Small extra facts without personal data (entitlement, field at fault, …)."""

    def body(self, seq: int, time: str, prev: bytes) -> dict[str, Any]:
        """The entry as it is hashed and stored."""
        return {
            "v": 1,
            "account": self.account,
            "seq": seq,
            "time": time,
            "principal": {"id": self.principal, "role": self.role, "auth": self.auth},
            "action": self.action,
            "target": self.target,
            "outcome": self.outcome,
            "code": self.code,
            "rationale": self.rationale,
            "events": list(self.events) if self.events else None,
            "detail": dict(self.detail) if self.detail else {},
            "prev": prev.hex(),
        }


def short_hash(secret: str) -> str:
    """A reference to a value that must not (or cannot) be stored, such as an unknown
    key: ``sha256:`` and 16 hex digits."""
    return "sha256:" + hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()[:16]


_TEXT_LIMITS = (
    ("principal", 80),
    ("action", 64),
    ("outcome", 16),
    ("code", 64),
    ("target", 80),
    ("rationale", 2000),
)
"""The entry's text fields and their longest storable values: the first four are
columns of ``audit_log`` too (``target`` is indexed)."""


def storable(entry: AuditEntry) -> AuditEntry:
    """``entry`` as every backend can store it, so that one entry never fails the write
    batch it is in: a text field (or a string in ``detail``) that holds a NUL
    character or a lone surrogate, or is longer than its column, is replaced by its
    ``short_hash``. A refusal's target is whatever the request named, so it may be any
    of these."""
    changes: dict[str, Any] = {}
    for name, limit in _TEXT_LIMITS:
        value = getattr(entry, name)
        if value is not None and text_problem(value, limit) is not None:
            changes[name] = short_hash(value)
    if entry.detail and first_unstorable(entry.detail, _TEXT_LIMITS[-1][1]) is not None:
        changes["detail"] = _storable_json(dict(entry.detail))
    return replace(entry, **changes) if changes else entry


def _storable_json(value: Any) -> Any:
    """``value`` (a small JSON value) with every unstorable string hashed."""
    if isinstance(value, str):
        return short_hash(value) if text_problem(value, _TEXT_LIMITS[-1][1]) else value
    if isinstance(value, list):
        return [_storable_json(item) for item in value]
    if isinstance(value, dict):
        return {_storable_json(k): _storable_json(v) for k, v in value.items()}
    return value


def entry_hash(encoded: bytes) -> bytes:
    return hashlib.sha256(DOMAIN + encoded).digest()


# ---------------------------------------------------------------- writing

_HEAD = "SELECT size, hash FROM audit_heads WHERE account = :account"
_INSERT = (
    "INSERT INTO audit_log (account, seq, time, principal, action, outcome, target, entry, hash) "
    "VALUES (:account, :seq, :time, :principal, :action, :outcome, :target, :entry, :hash)"
)
_SET_HEAD = (
    "INSERT INTO audit_heads (account, size, hash) VALUES (:account, :size, :hash) "
    "ON CONFLICT (account) DO UPDATE SET size = excluded.size, hash = excluded.hash"
)


def _head(conn: sa.Connection, account: str) -> tuple[int, bytes]:
    """Size and last hash of the chain; ``AuditTampered`` if the stored head row holds
    other types."""
    row = raw.execute(conn, _HEAD, {"account": account}).fetchone()
    if row is None:
        return 0, GENESIS
    what = f"the audit head of {account}"
    size = columns.integer(row[0], f"the size of {what}", None, AuditTampered)
    return size, columns.blob(row[1], f"the hash of {what}", None, AuditTampered)


def append(conn: sa.Connection, entries: Sequence[AuditEntry], time: str) -> None:
    """Chain ``entries`` onto their accounts' audit logs inside the caller's write
    transaction (which must hold the write lock: the heads are read, then moved).
    Each entry is made ``storable`` first."""
    by_account: dict[str, list[AuditEntry]] = {}
    for entry in entries:
        by_account.setdefault(entry.account, []).append(entry)
    for account, group in by_account.items():
        size, prev = _head(conn, account)
        rows = []
        for entry in map(storable, group):
            encoded = canonical_json(entry.body(size, time, prev))
            digest = entry_hash(encoded)
            rows.append(
                {
                    "account": account,
                    "seq": size,
                    "time": time,
                    "principal": entry.principal,
                    "action": entry.action,
                    "outcome": entry.outcome,
                    "target": entry.target,
                    "entry": encoded,
                    "hash": digest,
                }
            )
            size, prev = size + 1, digest
        raw.executemany(conn, _INSERT, rows)
        raw.execute(conn, _SET_HEAD, {"account": account, "size": size, "hash": prev}).close()


# ---------------------------------------------------------------- reading


@dataclass(frozen=True)
class AuditFilter:
    """Which entries a page shows; None matches everything."""

    action: str | None = None
    outcome: str | None = None
    principal: str | None = None
    target: str | None = None


def _public(entry: bytes, digest: bytes) -> dict[str, Any]:
    body: dict[str, Any] = orjson.loads(entry)
    body["hash"] = digest.hex()
    return body


def page(
    conn: sa.Connection,
    account: str,
    after: int | None = None,
    limit: int = 100,
    where: AuditFilter | None = None,
    newest_first: bool = False,
) -> tuple[list[dict[str, Any]], int | None]:
    """Entries of ``account`` after (or, newest first, before) seq ``after``.

    Returns the entries (each with its ``hash``) and the cursor of the next page,
    or None on the last page.
    """
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}", field="limit")
    where = where or AuditFilter()
    if where.outcome is not None and where.outcome not in OUTCOMES:
        raise InvalidInput(f"outcome must be one of {', '.join(OUTCOMES)}", field="outcome")
    log = t.audit_log.c
    query = sa.select(log.seq, log.entry, log.hash).where(log.account == account)
    for column, value in (
        (log.action, where.action),
        (log.outcome, where.outcome),
        (log.principal, where.principal),
        (log.target, where.target),
    ):
        if value is not None:
            query = query.where(column == value)
    if after is not None:
        query = query.where(log.seq < after if newest_first else log.seq > after)
    order = log.seq.desc() if newest_first else log.seq
    rows = conn.execute(query.order_by(order).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = rows[-1].seq if more and rows else None
    return [_public(r.entry, r.hash) for r in rows], cursor


def head(conn: sa.Connection, account: str) -> dict[str, Any]:
    """``{"size", "hash"}`` of the account's chain (size 0 before the first entry)."""
    size, digest = _head(conn, account)
    return {"size": size, "hash": digest.hex()}


def audited_accounts(conn: sa.Connection) -> list[str]:
    return list(conn.scalars(sa.select(t.audit_heads.c.account).order_by(t.audit_heads.c.account)))


# ---------------------------------------------------------------- verification


@dataclass(frozen=True)
class AuditReport:
    """A verified chain: its size and head hash, and the ledger events its entries
    account for (``[first, end)``, None when no entry appended events)."""

    account: str
    size: int
    head: str
    events: tuple[int, int] | None
    ledger_size: int

    def to_json(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "size": self.size,
            "head": self.head,
            "events": list(self.events) if self.events else None,
            "ledger_size": self.ledger_size,
        }


def _entries(conn: sa.Connection, account: str) -> Iterator[tuple[int, bytes, bytes]]:
    log = t.audit_log.c
    after = -1
    while True:
        rows = conn.execute(
            sa.select(log.seq, log.entry, log.hash)
            .where(log.account == account, log.seq > after)
            .order_by(log.seq)
            .limit(_VERIFY_CHUNK)
        ).all()
        for row in rows:
            what = f"audit entry after {after} of {account}"
            seq = columns.integer(row.seq, f"the seq of the {what}", after + 1, AuditTampered)
            what = f"audit entry {seq} of {account}"
            entry = columns.blob(row.entry, what, seq, AuditTampered)
            yield seq, entry, columns.blob(row.hash, f"the hash of {what}", seq, AuditTampered)
            after = seq
        if len(rows) < _VERIFY_CHUNK:
            return


def verify(conn: sa.Connection, account: str, ledger_size: int) -> AuditReport:
    """Check the whole chain of ``account``; raise ``AuditTampered`` naming the first
    entry that is wrong.

    Checks that seqs run 0, 1, 2, … without gaps; that each entry is canonical,
    names its own account and seq and the hash of the entry before it; that each
    stored hash is the hash of its entry; that the head row names the last entry;
    and that the event ranges of the entries are contiguous and reach the ledger's
    ``ledger_size`` (entries start covering the ledger where auditing began).
    """
    expected, prev = 0, GENESIS
    covered: tuple[int, int] | None = None
    for seq, encoded, digest in _entries(conn, account):
        if seq != expected:
            raise AuditTampered(f"audit entry {expected} of {account} is missing", seq=expected)
        try:
            body = orjson.loads(encoded)
            canonical = canonical_json(body) == encoded
        except (orjson.JSONDecodeError, InvalidInput):
            body, canonical = None, False
        if not isinstance(body, dict) or not canonical:
            raise AuditTampered(f"audit entry {seq} of {account} is not canonical JSON", seq=seq)
        if body.get("seq") != seq or body.get("account") != account:
            raise AuditTampered(f"audit entry {seq} of {account} names another place", seq=seq)
        if body.get("prev") != prev.hex():
            raise AuditTampered(
                f"audit entry {seq} of {account} does not follow entry {seq - 1}", seq=seq
            )
        if entry_hash(encoded) != digest:
            raise AuditTampered(f"audit entry {seq} of {account} was altered", seq=seq)
        covered = _cover(covered, body.get("events"), account, seq)
        expected, prev = seq + 1, digest
    size, last = _head(conn, account)
    if (size, last) != (expected, prev):
        raise AuditTampered(
            f"the audit head of {account} names {size} entries but the chain holds {expected}",
            seq=min(size, expected),
        )
    if covered is not None and covered[1] != ledger_size:
        raise AuditTampered(
            f"ledger events {covered[1]}..{ledger_size - 1} of {account} have no audit entry",
            seq=expected,
        )
    return AuditReport(account, expected, prev.hex(), covered, ledger_size)


def _cover(
    covered: tuple[int, int] | None, events: Any, account: str, seq: int
) -> tuple[int, int] | None:
    if events is None:
        return covered
    if not (
        isinstance(events, list)
        and len(events) == 2
        and all(isinstance(n, int) and n >= 0 for n in events)
    ):
        raise AuditTampered(f"audit entry {seq} of {account} has malformed events", seq=seq)
    first, count = events
    if covered is not None and first != covered[1]:
        raise AuditTampered(
            f"audit entry {seq} of {account} names events from {first}, "
            f"but the entries before it end at {covered[1]}",
            seq=seq,
        )
    return (first if covered is None else covered[0], first + count)
