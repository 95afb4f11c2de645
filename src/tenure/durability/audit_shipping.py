"""Audit shipping: each account's audit chain goes to every site with its ledger,
and a restore brings it back, proven.

The shipper writes, per account and site, the entries the site does not hold yet
as audit segments, then a head note signed by the ledger key:

- ``<ns>/audit/<first, 20 digits>-<end, 20 digits>-<hash>.seg``: entries ``first ..
  end - 1`` in the ledger segment format (``tenure.durability.segments``) under the
  magic line ``tenure-audit-segment v1``, one stored entry (its canonical JSON) per
  line. ``hash`` is the hex hash of its last entry, so segments of two chains that
  diverged (a restore cut the chain short, then the service went on) never share a
  name.
- ``<ns>/audit/head-<size, 20 digits>``: a note ``tenure-audit v1 / <account> /
  <size> / <hash>`` signed by the ledger key, written after the segments it covers.
  Heads are never overwritten, so two shippers at once (``tenure ship`` while the
  service ships) cannot put an older head over a newer one: the site's head is the
  largest. Each shipper deletes the head it wrote before, once a larger one is
  written, so that a site holds few. A shipper whose chain is not the one the
  site's head names (a restore cut the chain short, then the service went on)
  moves the site's heads to ``<ns>/audit/superseded/`` and ships its whole chain.

``<ns>`` is the account's namespace of its current epoch (``tenure.durability.epochs``).
Each pass reads the ledger head and the audit head in one transaction and ships the
audit before the ledger segments, so a site's audit chain always accounts for at
least the events its segments hold (entries are committed with their events).

A restore trusts nothing of this before it is proven: the head note must verify
with the ledger key; the chain is walked back from the signed head, each segment
found by its end and last hash, checked like a ledger segment, and every entry's
``prev`` must name the hash of the entry before it, down to the genesis hash. The
proven chain is then cut before the first entry that names ledger events the
restore does not hold (or, restoring to a moment, that is later than it), and
checked as ``tenure audit verify`` checks a stored chain. A whole restore also
requires the entries to account for every restored event since auditing began: an
older head left at the site (a rollback) would not.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import orjson

from tenure.domain.timefmt import parse_time
from tenure.durability import segments
from tenure.durability.segments import BadSegment, SegmentName
from tenure.durability.sites import Site
from tenure.errors import AuditTampered, Conflict, InvalidInput, TenureError
from tenure.ledger.note import NoteSigner, NoteVerifier, open_note, sign_note
from tenure.service import audit
from tenure.store.audit import AuditRecord
from tenure.store.memory.audit import MemoryAuditLog
from tenure.store.unit import Store, Transaction

FORMAT = "tenure-audit v1"
MAGIC = b"tenure-audit-segment v1\n"
SEGMENT_MAX = 10_000
_NAME = re.compile(r"(?:.*/)?audit/([0-9]{20})-([0-9]{20})-([0-9a-f]{64})\.seg")
_HEAD = re.compile(r"(?:.*/)?audit/head-([0-9]{20})")
_WRITE_CHUNK = 2000


class AuditUnproven(Conflict):
    """The audit chain at a site cannot be proven, so a restore will not take it."""

    code = "audit_unproven"


@dataclass(frozen=True)
class AuditName:
    """An audit segment's range and the hash of its last entry."""

    first: int
    end: int
    last: bytes

    def path(self, where: str) -> str:
        return f"{where}/audit/{self.first:020d}-{self.end:020d}-{self.last.hex()}.seg"


def parse_name(path: str) -> AuditName | None:
    """The range and last hash an audit segment's path names; None for another object."""
    match = _NAME.fullmatch(path)
    if match is None:
        return None
    first, end = int(match.group(1)), int(match.group(2))
    return AuditName(first, end, bytes.fromhex(match.group(3))) if end > first else None


def head_path(where: str, size: int) -> str:
    return f"{where}/audit/head-{size:020d}"


def head_text(account: str, size: int, last: bytes) -> str:
    """The text of the signed head note."""
    return f"{FORMAT}\n{account}\n{size}\n{last.hex()}\n"


def open_head(note: bytes, account: str, verifiers: list[NoteVerifier]) -> tuple[int, bytes]:
    """The size and last hash a site's head note vouches for; ``AuditUnproven``
    unless a ledger key signed it and it names ``account``."""
    try:
        text, _ = open_note(note.decode(), verifiers)
    except (TenureError, UnicodeDecodeError) as exc:
        raise AuditUnproven(f"the audit head of {account} is not signed by the ledger key") from exc
    lines = text.split("\n")
    if (
        len(lines) != 5
        or lines[:2] != [FORMAT, account]
        or not re.fullmatch(r"[0-9]{1,20}", lines[2])
        or not re.fullmatch(r"[0-9a-f]{64}", lines[3])
    ):
        raise AuditUnproven(f"the audit head of {account} is not a {FORMAT} note")
    return int(lines[2]), bytes.fromhex(lines[3])


def site_head(
    site: Site,
    account: str,
    where: str,
    verifiers: list[NoteVerifier],
    paths: list[str] | None = None,
) -> tuple[int, bytes] | None:
    """The size and last hash of the site's audit head: the largest, which must be a
    note the ledger key signed naming its own size (``AuditUnproven`` otherwise);
    None when the site has no audit head. ``paths``: the site's listing of
    ``<ns>/audit/``, if the caller has it."""
    if paths is None:
        paths = site.list(f"{where}/audit/")
    sizes = [int(m.group(1)) for p in paths if (m := _HEAD.fullmatch(p))]
    if not sizes:
        return None
    note = site.get(head_path(where, max(sizes)))
    if note is None:
        raise AuditUnproven(f"the audit head of {account} vanished from the site")
    size, last = open_head(note, account, verifiers)
    if size != max(sizes):
        raise AuditUnproven(f"the audit head of {account} is misnamed")
    return size, last


# ---------------------------------------------------------------- shipping


class AuditShipper:
    """The audit half of a shipping pass (``tenure.durability.shipping``): keeps,
    per site and namespace, how far the site holds this store's chain."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._ends: dict[tuple[str, str], int] = {}
        self._heads: dict[tuple[str, str], int] = {}
        self._encoded: dict[str, tuple[int, int, bytes, bytes]] = {}

    def ship(
        self,
        site: Site,
        account: str,
        where: str,
        head: tuple[int, bytes] | None,
        signer: Callable[[], NoteSigner],
    ) -> int:
        """Ship the entries of ``account`` up to ``head`` (read with the ledger head
        of the pass) that ``site`` lacks, then the head signed by ``signer()`` (the
        ledger key; asked for only when needed). Returns how many entries."""
        if head is None or head[0] == 0:
            return 0
        size, last = head
        key = (site.url, where)
        if key not in self._ends:
            self._ends[key] = self._site_end(site, account, where, signer().verifier)
        start = self._ends[key]
        while self._ends[key] < size:
            first = self._ends[key]
            end = min(size, first + SEGMENT_MAX)
            data, last_hash = self._segment(account, first, end)
            site.put(AuditName(first, end, last_hash).path(where), data)
            self._ends[key] = end
        before = self._heads.get(key)
        if before != size:
            note = sign_note(head_text(account, size, last), [signer()])
            site.put(head_path(where, size), note.encode())
            self._heads[key] = size
            if before is not None and before < size:
                site.delete(head_path(where, before))
        return size - start

    def _site_end(self, site: Site, account: str, where: str, verifier: NoteVerifier) -> int:
        """Where this store's chain continues at the site: the size of the site's
        signed head if this store's chain has the same hash there. Else 0: the whole
        chain is shipped again (under other names than a chain it diverged from),
        and, when the site's signed head names another chain, the site's heads are
        moved aside, since the largest head is the site's."""
        try:
            head = site_head(site, account, where, [verifier])
        except AuditUnproven:
            # A forged head, or one another shipper of this store replaced between
            # the listing and the read: ship everything, move nothing aside.
            return 0
        if head is None:
            return 0
        size, last = head
        with self._store.read() as tx:
            rows = tx.audit.chain(account, size - 2, 1) if size > 0 else []
        if rows and (rows[0].seq, rows[0].hash) == (size - 1, last):
            self._heads[site.url, where] = size
            return size
        _supersede(site, where)
        return 0

    def _segment(self, account: str, first: int, end: int) -> tuple[bytes, bytes]:
        """The segment of entries ``first .. end - 1`` and its last hash; the last
        one made per account is kept for the next site."""
        cached = self._encoded.get(account)
        if cached is not None and cached[:2] == (first, end):
            return cached[2], cached[3]
        with self._store.read() as tx:
            records = tx.audit.chain(account, first - 1, end - first)
        if [r.seq for r in records] != list(range(first, end)):
            raise AuditTampered(f"audit entries {first}..{end - 1} of {account} are not all stored")
        data = segments.encode(account, first, [r.entry for r in records], MAGIC)
        self._encoded[account] = (first, end, data, records[-1].hash)
        return data, records[-1].hash


def _supersede(site: Site, where: str) -> None:
    """Move every audit head at the site to ``<ns>/audit/superseded/`` (named by size
    and the note's hash): they name a chain this store does not continue, such as
    the chain a restore cut short. They and their segments stay for forensics."""
    for path in site.list(f"{where}/audit/"):
        match = _HEAD.fullmatch(path)
        note = site.get(path) if match else None
        if match is None or note is None:
            continue
        digest = hashlib.sha256(note).hexdigest()
        site.put(f"{where}/audit/superseded/head-{match.group(1)}-{digest}", note)
        site.delete(path)


def read_head(tx: Transaction, account: str) -> tuple[int, bytes] | None:
    """The account's audit head, read in the pass's transaction."""
    return tx.audit.head(account)


# ---------------------------------------------------------------- restoring

Source = Literal["site", "none", "skipped"]


@dataclass(frozen=True)
class ShippedAudit:
    """What a restore found of an account's audit chain at a site: the proven entries
    up to the cut (``source`` ``site``), none (``none``: the site has no audit head;
    ``skipped``: not asked for), or why the site's chain cannot be proven."""

    records: tuple[AuditRecord, ...] = ()
    source: Source = "none"
    signed_size: int = 0
    problem: str | None = None

    @property
    def size(self) -> int:
        return len(self.records)


NOT_SHIPPED = ShippedAudit()
"""No audit chain at the site."""


def prove(
    site: Site,
    account: str,
    where: str,
    verifiers: list[NoteVerifier],
    ledger_size: int,
    at_time: datetime | None = None,
    whole: bool = True,
) -> ShippedAudit:
    """The audit chain at ``site`` proven against its signed head and cut to a restore
    of ``ledger_size`` events (see the module doc). A chain that cannot be proven is
    returned with its ``problem``, for ``write`` to refuse; a site that is down
    raises ``SiteUnavailable``."""
    paths = site.list(f"{where}/audit/")
    try:
        head = site_head(site, account, where, verifiers, paths)
        if head is None and any(parse_name(path) for path in paths):
            raise AuditUnproven(f"the site holds audit segments of {account} but no audit head")
        if head is None:
            return ShippedAudit()
        size, last = head
        entries = _walk(site, account, where, paths, size, last)
        records = _records(_cut(entries, ledger_size, at_time), account)
        _verify(records, account, ledger_size if whole else None)
    except AuditUnproven as exc:
        return ShippedAudit(problem=exc.message)
    return ShippedAudit(tuple(records), "site", size)


def write(tx: Transaction, account: str, shipped: ShippedAudit) -> None:
    """Write the proven chain into an empty target in the restore's transaction, head
    included, so that the restored service's next entry links to it. Raises
    ``AuditUnproven`` (rolling the restore back) for a chain that was not proven."""
    if shipped.problem is not None:
        raise AuditUnproven(
            f"{shipped.problem}: restore from another site, or pass --without-audit to "
            "restore the ledger and start a new audit chain"
        )
    records = shipped.records
    for start in range(0, len(records), _WRITE_CHUNK):
        chunk = records[start : start + _WRITE_CHUNK]
        tx.audit.append(account, chunk, chunk[-1].seq + 1, chunk[-1].hash)


def _walk(
    site: Site, account: str, where: str, paths: list[str], size: int, last: bytes
) -> list[bytes]:
    """The entries ``0 .. size - 1`` whose last hash is ``last``: segments (among
    ``paths``) found from the end back, each by its end and last hash, each linked
    to the one before."""
    found: dict[tuple[int, bytes], list[AuditName]] = {}
    for path in paths:
        name = parse_name(path)
        if name is not None:
            found.setdefault((name.end, name.last), []).append(name)
    parts: list[list[bytes]] = []
    end, want = size, last
    while end > 0:
        candidates = sorted(found.get((end, want), []), key=lambda n: n.first)
        entries = next(
            (e for n in candidates if (e := _linked(site, account, where, n)) is not None), None
        )
        if entries is None:
            raise AuditUnproven(
                f"no audit segment of {account} at the site ends at entry {end - 1} with "
                f"its signed hash {want.hex()[:16]}…: the chain is truncated or altered"
            )
        parts.append(entries)
        end -= len(entries)
        want = bytes.fromhex(orjson.loads(entries[0])["prev"])
    if want != audit.GENESIS:
        raise AuditUnproven(f"the audit chain of {account} at the site does not start at genesis")
    return [entry for part in reversed(parts) for entry in part]


def _linked(site: Site, account: str, where: str, name: AuditName) -> list[bytes] | None:
    """The entries of one segment if it is intact and its entries link to each other
    and end with ``name.last``; None otherwise (another candidate may be)."""
    data = site.get(name.path(where))
    if data is None:
        return None
    try:
        entries = segments.decode(data, account, SegmentName(name.first, name.end), MAGIC)
        prevs = [bytes.fromhex(orjson.loads(entry)["prev"]) for entry in entries]
    except (BadSegment, KeyError, TypeError, ValueError):
        return None
    hashes = [audit.entry_hash(entry) for entry in entries]
    if prevs[1:] != hashes[:-1] or hashes[-1] != name.last:
        return None
    return entries


def _cut(entries: list[bytes], ledger_size: int, at_time: datetime | None) -> list[bytes]:
    """The entries before the first that names events beyond ``ledger_size`` or, with
    ``at_time``, that was written after it."""
    for seq, entry in enumerate(entries):
        body = orjson.loads(entry)
        events = body.get("events")
        named = isinstance(events, list) and all(isinstance(n, int) for n in events)
        if named and sum(events) > ledger_size:
            return entries[:seq]
        if at_time is not None and _written(body, seq) > at_time:
            return entries[:seq]
    return entries


def _written(body: dict[str, Any], seq: int) -> datetime:
    try:
        return parse_time(body.get("time"))  # type: ignore[arg-type]  # checked inside
    except InvalidInput as exc:
        raise AuditUnproven(f"audit entry {seq} at the site has no valid time") from exc


def _records(entries: list[bytes], account: str) -> list[AuditRecord]:
    """The stored rows of proven entries (their searched columns copied out);
    ``AuditUnproven`` for an entry whose columns would not be text."""
    records = []
    for seq, entry in enumerate(entries):
        time, who, action, outcome, target = audit.searched_fields(orjson.loads(entry))
        texts = (time, who, action, outcome)
        if not all(isinstance(c, str) for c in texts) or not isinstance(target, str | None):
            raise AuditUnproven(f"audit entry {seq} of {account} at the site is malformed")
        digest = audit.entry_hash(entry)
        records.append(AuditRecord(seq, time, who, action, outcome, target, entry, digest))
    return records


def _verify(records: Sequence[AuditRecord], account: str, ledger_size: int | None) -> None:
    """Check the chain as ``tenure audit verify`` will check it once written; with
    ``ledger_size``, that its entries account for every event up to it."""
    log = MemoryAuditLog({})
    if records:
        log.append(account, records, len(records), records[-1].hash)
    covered = _covered_end(records)
    try:
        audit.verify(log, account, covered if ledger_size is None else ledger_size)
    except AuditTampered as exc:
        raise AuditUnproven(f"the audit chain at the site: {exc.message}") from exc


def _covered_end(records: Sequence[AuditRecord]) -> int:
    """The end of the last ledger event range the entries name (0 for none)."""
    for record in reversed(records):
        events = orjson.loads(record.entry).get("events")
        if isinstance(events, list) and len(events) == 2:
            return int(events[0]) + int(events[1])
    return 0
