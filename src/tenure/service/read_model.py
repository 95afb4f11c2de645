"""What checks read, kept per process while the store's read generation stands
(docs/state.md, "Checks from proven rows in memory").

A check reads a credential, a license, its plan version and the latest checkpoint.
This process keeps what it read, once proven (``checks.check`` proves every row
against the signed state map before answering from it), keyed by what the caller
named, and answers the next check of the same license from memory, as long as the
account's *read generation* (migration 0014) stands: a counter that triggers move on
every change to the rows a check or its credential reads, whoever made it (this
server, another server on the same database, an operator with ``sqlite3``). On
SQLite each check reads it; on PostgreSQL the server's listener keeps it from the
triggers' notifications (``Store.generation``). While it stands, the rows kept are
the rows stored; once it moves, the next check reads and proves them again. So a
revocation on another server is honoured here at once (PostgreSQL: once its
notification arrived), a row edited on disk is refused as before, and an answer
never quotes a checkpoint older than the rows it decided on: they were read together.

The counter only says when to read again. What is kept is only ever a proven row:
a writer who bypassed the triggers would get no answer from an unproven row either.

Bounded: ``capacity`` licenses and credentials per process (oldest first out), so an
account with a million licenses costs at most that many entries per worker. Each
entry is tagged with the generation it was read under and is used only under that
generation, so a check that raced a change never keeps a stale entry alive.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from tenure.crypto.keystore import hash_license_key
from tenure.domain.licensekeys import is_serial
from tenure.domain.state import Row
from tenure.errors import InvalidInput
from tenure.observability import metrics
from tenure.service import checks
from tenure.service.apikeys import Principal, authenticate, hash_api_key
from tenure.service.checks import CheckItem, CheckpointRef, Decided, LicenseHolder
from tenure.service.state_guard import StateGuard
from tenure.store.unit import Store

V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class _Read:
    """The rows a check of one license read, proven, and the checkpoint read with them."""

    license_row: Row | None
    plan_row: Row | None
    checkpoint: CheckpointRef | None


class _Kept(Generic[V]):
    """Entries with the generation they were read under; at most ``capacity``."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._entries: dict[object, tuple[int, V]] = {}

    def get(self, key: object) -> tuple[int, V] | None:
        return self._entries.get(key)

    def put(self, key: object, generation: int, value: V) -> None:
        if self._capacity <= 0:
            return
        entries = self._entries
        if len(entries) >= self._capacity and key not in entries:
            # The oldest entry out (another thread may have taken it first).
            with suppress(StopIteration, KeyError, RuntimeError):
                del entries[next(iter(entries))]
        entries[key] = (generation, value)


class CheckReadModel:
    """A process's proven rows for checks, each used while its account's read
    generation stands.

    Thread-safe enough for its use: single checks run on the event loop, batches in
    the thread pool; an entry is used only under the generation it was read under,
    and a miss reads the generation before the rows it keeps."""

    def __init__(self, store: Store, capacity: int = 10_000) -> None:
        self._store = store
        self.capacity = capacity
        self._reads: _Kept[_Read] = _Kept(capacity)
        self._principals: _Kept[Principal] = _Kept(capacity)
        self._holders: _Kept[tuple[str, str]] = _Kept(capacity)

    @property
    def enabled(self) -> bool:
        return self.capacity > 0

    @staticmethod
    def _hit() -> None:
        metrics.observe_read_model(True)

    @staticmethod
    def _miss() -> None:
        metrics.observe_read_model(False)

    def principal(self, key: str) -> tuple[Principal, int]:
        """``apikeys.authenticate(store, key)`` and the read generation of the key's
        account now, from memory when the key was read under that generation. A
        refused key is not kept: it raises every time."""
        digest = hash_api_key(key)
        found = self._principals.get(digest)
        if found is not None:
            generation = self._store.generation(found[1].account)
            if generation == found[0]:
                self._hit()
                return found[1], generation
        else:  # the key's account, to read its generation before the key again
            generation = self._store.generation(authenticate(self._store, key).account)
        self._miss()
        caller = authenticate(self._store, key)
        self._principals.put(digest, generation, caller)
        return caller, generation

    def holder(self, key: str) -> tuple[LicenseHolder, int]:
        """``checks.authenticate_license(store, key)`` and the read generation of its
        account now, from memory when the key was read under that generation."""
        digest = hash_license_key(key)
        found = self._holders.get(digest)
        if found is not None:
            account, serial = found[1]
            generation = self._store.generation(account)
            if generation == found[0]:
                self._hit()
                return LicenseHolder(account, serial, key), generation
        else:
            holder = checks.authenticate_license(self._store, key)
            generation = self._store.generation(holder.account)
        self._miss()
        holder = checks.authenticate_license(self._store, key)
        self._holders.put(digest, generation, (holder.account, holder.serial))
        return holder, generation

    def check_many(
        self,
        account: str,
        items: Sequence[CheckItem],
        now: datetime,
        guard: StateGuard,
        generation: int,
    ) -> list[Decided] | None:
        """``checks.check_many`` from memory when the rows of every item were kept
        under ``generation`` (one state, then, as a batch must be decided on); None
        when one was not (the caller decides the batch on the store, ``keep_many``)."""
        guard.require(account)
        kept: list[_Read] = []
        for item in items:
            found = self._reads.get((account, _name(item.license)))
            if found is None or found[0] != generation:
                self._miss()
                return None
            kept.append(found[1])
        decided = []
        for index, (item, read) in enumerate(zip(items, kept, strict=True)):
            try:
                decided.append(
                    checks.answer_from(item, read.license_row, read.plan_row, now, read.checkpoint)
                )
            except InvalidInput as error:
                raise checks.in_batch(index, error) from error
        metrics.observe_read_model(True, len(items))
        return decided

    def keep_many(
        self, account: str, items: Sequence[CheckItem], decided: Sequence[Decided], generation: int
    ) -> None:
        """Keep the rows a batch decided on the store read, proven, under
        ``generation`` (read before them)."""
        for item, one in zip(items, decided, strict=True):
            self._keep(account, item, one, generation)

    def _keep(self, account: str, item: CheckItem, decided: Decided, generation: int) -> None:
        rows = dict((table, row) for table, _, row in decided.read)
        kept = _Read(rows.get("licenses"), rows.get("plan_versions"), decided.answer["checkpoint"])
        self._reads.put((account, _name(item.license)), generation, kept)

    def check(
        self,
        account: str,
        item: CheckItem,
        now: datetime,
        guard: StateGuard,
        generation: int,
    ) -> Decided:
        """``checks.check(store, account, item, now, guard)``, decided on the rows kept
        for ``item.license`` when they were read (and proven) under ``generation``,
        the read generation of ``account`` read before this call."""
        guard.require(account)  # an account found unproven since is refused here too
        found = self._reads.get((account, _name(item.license)))
        if found is not None and found[0] == generation:
            self._hit()
            read = found[1]
            return checks.answer_from(item, read.license_row, read.plan_row, now, read.checkpoint)
        self._miss()
        decided = checks.check(self._store, account, item, now, guard)
        self._keep(account, item, decided, generation)
        return decided


def _name(license: str) -> str:
    """How a license named in a check is kept: its serial, or its key's hash (a key
    is a secret: the process keeps none)."""
    return license if is_serial(license) else "#" + hash_license_key(license)
