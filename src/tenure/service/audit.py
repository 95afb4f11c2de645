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
verification. The columns pages are searched on (``time``, ``principal``,
``action``, ``outcome``, ``target``) are copies of the entry's fields, and
``verify`` compares each with the hashed entry. Entries that answer a mutation
also name the ledger events it appended (``events: [first_seq, count]``);
``verify`` checks that those ranges cover the ledger without gaps up to its head,
so the audit log cannot lose the record of a change that the signed ledger proves
happened.

Entries hold no personal data: principals are API key ids, licenses appear by
serial, customers by id, and an unknown credential or license key only by a short
hash. Request bodies (customer names, e-mail addresses) are never written here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal, Protocol

import orjson
from pydantic import Field
from typing_extensions import TypedDict

from tenure.canonical import canonical_json
from tenure.domain.answers import NonNegative, closed
from tenure.domain.storable import first_unstorable, text_problem
from tenure.domain.values import Hex64, Time
from tenure.errors import AuditTampered, InvalidInput
from tenure.store.audit import AuditFilter as AuditFilter
from tenure.store.audit import AuditLog, AuditRecord

GENESIS = bytes(32)
"""The ``prev`` of an account's first entry."""
DOMAIN = b"tenure.audit.v1\n"
Outcome = Literal["allowed", "denied"]
OUTCOMES: tuple[Outcome, ...] = ("allowed", "denied")
MAX_PAGE = 500
_VERIFY_CHUNK = 2000


@closed
class PrincipalJson(TypedDict):
    id: str
    role: str
    auth: str


@closed
class AuditEntryBody(TypedDict):
    """An entry as it is hashed and stored (``AuditEntry.body``)."""

    v: Literal[1]
    account: str
    seq: NonNegative
    time: Time
    principal: PrincipalJson
    action: str
    target: str | None
    outcome: Outcome
    code: str
    rationale: str | None
    events: Annotated[
        Annotated[list[NonNegative], Field(min_length=2, max_length=2)] | None,
        Field(description="[first_seq, count] of the ledger events the request appended"),
    ]
    detail: dict[str, Any]
    prev: Hex64


@closed
class AuditEntryJson(AuditEntryBody):
    """A stored entry with its ``hash`` (``page``)."""

    hash: Hex64


@closed
class AuditPage(TypedDict):
    entries: list[AuditEntryJson]
    next_cursor: NonNegative | None


@closed
class AuditHead(TypedDict):
    """The chain's size and last hash (``head``)."""

    size: NonNegative
    hash: Hex64


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
    outcome: Outcome
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

    def body(self, seq: int, time: str, prev: bytes) -> AuditEntryBody:
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


class Caller(Protocol):
    """Who asks (an authenticated principal, ``tenure.service.apikeys.Principal``)."""

    @property
    def id(self) -> str: ...

    @property
    def account(self) -> str: ...

    @property
    def role(self) -> str: ...

    @property
    def auth(self) -> str: ...


def caller_entry(
    caller: Caller,
    action: str,
    outcome: Outcome,
    code: str,
    target: str | None = None,
    detail: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """The audit entry of ``caller`` asking for ``action`` on ``target``, answered
    with ``outcome`` and ``code``."""
    return AuditEntry(
        caller.account,
        caller.id,
        caller.role,
        caller.auth,
        action,
        outcome,
        code,
        target=target,
        detail=detail,
    )


def request_entry(
    caller: Caller,
    action: str,
    target: str | None = None,
    detail: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """The audit entry of ``caller`` asking for ``action`` on ``target``, allowed with
    code ``ok`` until the ledger writer fills in how the request ended (the one
    builder of the use cases' entries: ``tenure.service.handlers``, ``tenure.ops``)."""
    return caller_entry(caller, action, "allowed", "ok", target, detail)


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
"""The entry's text fields and their longest storable values: ``principal``,
``action``, ``outcome`` and ``target`` are columns of ``audit_log`` too (``target``
is indexed)."""


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


def encoded_body(entry: AuditEntry, seq: int, time: str, prev: bytes) -> bytes:
    """``canonical_json(entry.body(seq, time, prev))``, cheaper: every decision is
    chained through here. The body's members are typed (texts, integers of the chain,
    fixed ASCII keys), so only ``detail``, the one free-form member, goes through the
    value-domain check; orjson with sorted keys then writes the canonical bytes
    whenever they are ASCII, and anything else takes the reference path."""
    body = entry.body(seq, time, prev)
    if body["detail"]:
        canonical_json(body["detail"])  # InvalidInput for a value outside the domain
    try:
        encoded = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # a lone surrogate: canonical_json names the member at fault
        return canonical_json(body)
    return encoded if encoded.isascii() else canonical_json(body)


def entry_hash(encoded: bytes) -> bytes:
    return hashlib.sha256(DOMAIN + encoded).digest()


# ---------------------------------------------------------------- writing


def _head(log: AuditLog, account: str) -> tuple[int, bytes]:
    """Size and last hash of the chain (``AuditTampered`` for a malformed head)."""
    return log.head(account) or (0, GENESIS)


def append(log: AuditLog, entries: Sequence[AuditEntry], time: str) -> None:
    """Chain ``entries`` onto their accounts' audit logs inside the caller's write
    transaction (which must hold the write lock: the heads are read, then moved).
    Each entry is made ``storable`` first."""
    by_account: dict[str, list[AuditEntry]] = {}
    for entry in entries:
        by_account.setdefault(entry.account, []).append(entry)
    for account, group in by_account.items():
        size, prev = _head(log, account)
        records = []
        for entry in map(storable, group):
            encoded = encoded_body(entry, size, time, prev)
            digest = entry_hash(encoded)
            records.append(
                AuditRecord(
                    size,
                    time,
                    entry.principal,
                    entry.action,
                    entry.outcome,
                    entry.target,
                    encoded,
                    digest,
                )
            )
            size, prev = size + 1, digest
        log.append(account, records, size, prev)


# ---------------------------------------------------------------- reading


def _public(entry: bytes, digest: bytes) -> AuditEntryJson:
    body: AuditEntryJson = orjson.loads(entry)
    body["hash"] = digest.hex()
    return body


def page(
    log: AuditLog,
    account: str,
    after: int | None = None,
    limit: int = 100,
    where: AuditFilter | None = None,
    newest_first: bool = False,
) -> tuple[list[AuditEntryJson], int | None]:
    """Entries of ``account`` after (or, newest first, before) seq ``after``.

    Returns the entries (each with its ``hash``) and the cursor of the next page,
    or None on the last page.
    """
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}", field="limit")
    where = where or AuditFilter()
    if where.outcome is not None and where.outcome not in OUTCOMES:
        raise InvalidInput(f"outcome must be one of {', '.join(OUTCOMES)}", field="outcome")
    rows = log.page(account, after, limit + 1, where, newest_first)
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = rows[-1][0] if more and rows else None
    return [_public(entry, digest) for _, entry, digest in rows], cursor


def head(log: AuditLog, account: str) -> AuditHead:
    """``{"size", "hash"}`` of the account's chain (size 0 before the first entry)."""
    size, digest = _head(log, account)
    return {"size": size, "hash": digest.hex()}


def audited_accounts(log: AuditLog) -> list[str]:
    return log.accounts()


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


def _entries(log: AuditLog, account: str) -> Iterator[AuditRecord]:
    after = -1
    while rows := log.chain(account, after, _VERIFY_CHUNK):
        yield from rows
        after = rows[-1].seq


def verify(log: AuditLog, account: str, ledger_size: int) -> AuditReport:
    """Check the whole chain of ``account``; raise ``AuditTampered`` naming the first
    entry that is wrong (and, when one column of its row is at fault, the column).

    Checks that seqs run 0, 1, 2, … without gaps; that each entry is canonical, that
    its stored hash is its hash, that it names its own account and seq and the hash
    of the entry before it; that every other column of its row (time, principal,
    action, outcome, target: what pages are searched on) holds what the entry says;
    that the head row names the last entry; and that the event ranges of the entries
    are contiguous and reach the ledger's ``ledger_size`` (entries start covering the
    ledger where auditing began).
    """
    expected, prev = 0, GENESIS
    covered: tuple[int, int] | None = None
    for record in _entries(log, account):
        seq = record.seq
        if seq != expected:
            raise AuditTampered(f"audit entry {expected} of {account} is missing", seq=expected)
        body = _hashed_body(record, account)
        _check_column(record, "account", account, body.get("account"), account)
        _check_column(record, "seq", seq, body.get("seq"), account)
        if body.get("prev") != prev.hex():
            raise AuditTampered(
                f"audit entry {seq} of {account} does not follow entry {seq - 1}", seq=seq
            )
        _check_searched(record, body, account)
        covered = _cover(covered, body.get("events"), account, seq)
        expected, prev = seq + 1, record.hash
    size, last = _head(log, account)
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


_SEARCHED = ("time", "principal", "action", "outcome", "target")
"""The columns of ``audit_log`` that copy a field of the entry for searching
(``AuditRecord``), besides ``account`` and ``seq``."""


def _hashed_body(record: AuditRecord, account: str) -> dict[str, Any]:
    """The entry of ``record``, parsed; ``AuditTampered`` unless it is canonical JSON
    of an object whose hash is the stored one."""
    try:
        body = orjson.loads(record.entry)
        canonical = canonical_json(body) == record.entry
    except (orjson.JSONDecodeError, InvalidInput):
        body, canonical = None, False
    if not isinstance(body, dict) or not canonical:
        raise AuditTampered(
            f"audit entry {record.seq} of {account} is not canonical JSON", seq=record.seq
        )
    if entry_hash(record.entry) != record.hash:
        raise AuditTampered(f"audit entry {record.seq} of {account} was altered", seq=record.seq)
    return body


def searched_fields(body: dict[str, Any]) -> tuple[Any, Any, Any, Any, Any]:
    """What an entry gives the ``_SEARCHED`` columns of its row (``principal``: the
    principal's id), as found: None for a field it lacks, any JSON value otherwise."""
    principal = body.get("principal")
    return (
        body.get("time"),
        principal.get("id") if isinstance(principal, dict) else None,
        body.get("action"),
        body.get("outcome"),
        body.get("target"),
    )


def _check_searched(record: AuditRecord, body: dict[str, Any], account: str) -> None:
    """``AuditTampered`` naming the row and the first of its ``_SEARCHED`` columns that
    does not hold the entry's field (``principal``: the principal's id)."""
    hashed = searched_fields(body)
    # The columns hold text or None: equal to a JSON value only if of the same type.
    stored = (record.time, record.principal, record.action, record.outcome, record.target)
    if stored != hashed:
        for column, kept, said in zip(_SEARCHED, stored, hashed, strict=True):
            _check_column(record, column, kept, said, account)


def _check_column(record: AuditRecord, column: str, stored: Any, hashed: Any, account: str) -> None:
    """``AuditTampered`` naming the row and ``column`` if the column does not hold the
    value the hashed entry gives it."""
    if stored != hashed or type(stored) is not type(hashed):
        raise AuditTampered(
            f"audit entry {record.seq} of {account}: its {column} column holds "
            f"{_shown(stored)} but the entry says {_shown(hashed)}",
            seq=record.seq,
            column=column,
        )


def _shown(value: Any) -> str:
    """``value`` for a message: its repr, cut short (a column may hold anything)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


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
