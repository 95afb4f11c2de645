"""Which accounts' stored state this process has proven, and which it found
tampered (docs/state.md, "Every path that trusts the state proves it first").

The service proves every account when it starts and every
``TENURE_STATE_VERIFY_MINUTES``: the whole ledger check of ``ledger verify`` (leaves,
nodes, signed checkpoints, sidecar), then the stored rows, leaves, buckets and head
root against the signed state root of the checkpoint at the head — or, when the head
is past the last checkpoint with a state line, against a replay of the ledger. An
account that fails is refused checks and appends (``StateUnverified``, 503) and named
by ``/readyz`` until a pass proves it again (after ``tenure state rebuild`` or a
restore).
"""

from __future__ import annotations

import base64
import functools
import logging
import threading
from collections.abc import Iterable
from typing import Any, NoReturn

from tenure.domain.state import Key, Row
from tenure.errors import LedgerTampered, NotFound, StateUnverified, TenureError
from tenure.ledger.checkpoint import open_checkpoint, parse_checkpoint
from tenure.ledger.note import parse_note
from tenure.ledger.statemap import MapTop, bucket_hash, bucket_of, prove, root_from_path, row_leaf
from tenure.service.sidecar import Sidecar
from tenure.service.state_check import build_state_map
from tenure.service.verify import Confirm, trusted_verifiers, verify_in, verify_ledger
from tenure.store.unit import Store, Transaction

_log = logging.getLogger("tenure.state")

LEAF_CACHE_BUCKETS = 20_000
"""Buckets of proven leaves kept per account (about 15 leaves each at a million rows)."""
PATH_CACHE_ROWS = 20_000
"""Rows whose path under the newest signed root is kept per account, for proofs."""

ReadRow = tuple[str, Key, Row]
"""``(table, key, row)``: a projection row a decision read."""


def _unverified(account: str, problem: str) -> StateUnverified:
    return StateUnverified(
        f"the stored state of {account} does not prove against the signed ledger "
        f"({problem}); checks and appends are refused until `tenure state rebuild` "
        "or a restore"
    )


class StateGuard:
    """What this process has proven of each account's state — the map it keeps, the
    leaves proven under it — and the accounts it found unproven, with why. Thread-safe."""

    def __init__(self, confirm: Confirm | None = None) -> None:
        self.confirm = confirm
        """Which verifier keys stored in the database to trust: the service's key store
        confirms its own (``Runtime.open``); None trusts them all (tests)."""
        self._lock = threading.Lock()
        self._published = threading.Condition(self._lock)
        self._problems: dict[str, str] = {}
        self._outside: dict[str, str] = {}
        """Per account, a signed checkpoint kept outside the store (a site's)."""
        self._tops: dict[str, tuple[int, MapTop]] = {}
        """Per account, the head size and the state map above the buckets last proven
        (the ledger writer advances it after each commit)."""
        self._leaves: dict[str, dict[int, dict[bytes, bytes]]] = {}
        """Per account and bucket, the leaves proven against the kept map's bucket hash:
        a check whose rows hash to them reads no leaf from the database."""
        self._generation: dict[str, int] = {}
        """Per account, moved whenever the kept map may change (``changing``)."""
        self._paths: dict[tuple[str, int, bytes], dict[bytes, tuple[bytes, list[str]]]] = {}
        """Per (account, size, signed state root), the paths proven under that root:
        ``k`` → (leaf hash, base64 siblings); only the newest root of each account."""

    def require(self, account: str) -> None:
        """``StateUnverified`` when ``account``'s state was found unproven."""
        problem = self._problems.get(account)
        if problem is not None:
            raise _unverified(account, problem)

    def refuse(self, account: str, problem: str) -> NoReturn:
        """Record ``account`` as unproven for ``problem`` and raise ``StateUnverified``."""
        self.record(account, problem)
        raise _unverified(account, problem)

    def problems(self) -> dict[str, str]:
        with self._lock:
            return dict(self._problems)

    def record(self, account: str, problem: str | None) -> None:
        with self._lock:
            if problem is None:
                if self._problems.pop(account, None) is not None:
                    _log.warning("the state of %s is proven again", account)
            else:
                if account not in self._problems:
                    _log.error("the state of %s is not proven: %s", account, problem)
                self._problems[account] = problem

    def keep_outside(self, account: str, note: str) -> None:
        """Prove ``account`` from now on also against ``note``, a signed checkpoint kept
        outside the store (a site's): a store whose history is not the one it signed —
        rewritten, or cut below it — does not prove."""
        with self._lock:
            self._outside[account] = note

    def verify(self, store: Store, account: str, sidecar: Sidecar | None) -> str | None:
        """Prove ``account`` (see the module doc), record and return what failed."""
        problem = None
        kept = self._outside.get(account)
        try:
            report = verify_ledger(
                store, account, sidecar, replay_state=False, kept=kept, confirm=self.confirm
            )
        except NotFound:
            pass
        except LedgerTampered as exc:
            problem = exc.message
        else:
            self.advance(account, report.size, report.state)
        self.record(account, problem)
        return problem

    def follow(self, store: Store, account: str) -> bool:
        """Take the map of another writer's head (a second server, a local command)
        without a replay: when the head has a signed checkpoint whose state root the
        stored buckets hash to, those buckets are the signed ones. False when the head
        is not signed yet or they do not hash to it."""
        with store.read() as tx:
            head = tx.ledger.head(account)
            stored = tx.ledger.checkpoint(account)
            if head is None or stored is None or stored.size != head.size:
                return False
            try:
                verifiers = trusted_verifiers(tx.ledger, account, confirm=self.confirm)
                signed = open_checkpoint(stored.note, verifiers)
            except TenureError:
                return False
            top = MapTop(tx.state_map.buckets(account))
        if signed.state is None or top.root() != signed.state:
            return False
        self.advance(account, head.size, top)
        return True

    # --- the ledger writer ---

    def top_for(self, tx: Transaction, account: str, size: int, sidecar: Sidecar | None) -> MapTop:
        """The proven state map of ``account`` at head size ``size``: the one kept, or
        one proven now in ``tx`` (``StateUnverified`` when it does not prove). The
        caller may change it in place (the writer, in its batch), and must then
        ``advance`` after its commit or ``forget`` after a failure."""
        self.require(account)
        with self._lock:
            kept = self._tops.get(account)
        if kept is not None and kept[0] == size:
            return kept[1]
        try:
            report = verify_in(tx, account, sidecar, replay_state=False, confirm=self.confirm)
        except LedgerTampered as exc:
            self.record(account, exc.message)
            self.require(account)
            raise
        self.advance(account, report.size, report.state)
        return report.state

    def advance(self, account: str, size: int, top: MapTop) -> None:
        """Keep ``top`` as the proven map at head size ``size``, unless one of a larger
        size (or the same) is kept already."""
        with self._published:
            kept = self._tops.get(account)
            if kept is None or kept[0] < size:
                if kept is None or kept[1] is not top:
                    self._drop_leaves(account, None)
                self._tops[account] = (size, top)
            self._published.notify_all()

    def changing(self, account: str, buckets: Iterable[int]) -> None:
        """The writer is about to change ``buckets`` of the kept map (in place, before
        its commit): forget the leaves proven in them."""
        with self._lock:
            self._drop_leaves(account, buckets)

    def forget(self, account: str) -> None:
        with self._published:
            self._tops.pop(account, None)
            self._drop_leaves(account, None)
            self._published.notify_all()

    def _drop_leaves(self, account: str, buckets: Iterable[int] | None) -> None:
        """(Under the lock.) Forget proven leaves of ``buckets`` (all when None)."""
        self._generation[account] = self._generation.get(account, 0) + 1
        kept = self._leaves.get(account)
        if kept is None:
            return
        if buckets is None:
            del self._leaves[account]
            return
        for bucket in buckets:
            kept.pop(bucket, None)

    # --- checks ---

    def proves(self, tx: Transaction, account: str, rows: Iterable[ReadRow]) -> bool:
        """Whether every ``(table, key, row)`` read in ``tx`` hashes, through its
        bucket's stored leaves, into the kept proven map. False also when none is
        kept, or when ``tx`` saw a commit the map does not have yet: ``wait`` then
        retry in a new transaction."""
        wanted = [row_leaf(table, key, row) for table, key, row in rows]
        proven = self._leaves.get(account, {})
        unproven = [(k, leaf) for k, leaf in wanted if proven.get(bucket_of(k), {}).get(k) != leaf]
        if not unproven:
            return True
        with self._lock:
            kept = self._tops.get(account)
            generation = self._generation.get(account, 0)
        if kept is None:
            return False
        top = kept[1]
        stored = tx.state_map.bucket_leaves(account, {bucket_of(k) for k, _ in unproven})
        for bucket, leaves in stored.items():
            if bucket_hash(leaves) != top.bucket(bucket):
                return False
        found = {k: leaf for leaves in stored.values() for k, leaf in leaves}
        if not all(found.get(k) == leaf for k, leaf in unproven):
            return False
        with self._lock:  # unless the map changed meanwhile: then they may be stale
            if self._generation.get(account, 0) == generation:
                cached = self._leaves.setdefault(account, {})
                if len(cached) > LEAF_CACHE_BUCKETS:
                    cached.clear()
                cached.update((bucket, dict(leaves)) for bucket, leaves in stored.items())
        return True

    def proof(
        self, tx: Transaction, account: str, size: int, note: str, rows: Iterable[ReadRow]
    ) -> dict[str, Any] | None:
        """The proof of ``rows`` (read in ``tx``) under the state root of ``note``, the
        signed checkpoint of the head of size ``size`` (docs/state.md, "Proofs"); None
        when the kept map is not of that size yet (or changed while proving): sign the
        head or wait, then ask again in a new transaction."""
        with self._lock:
            kept = self._tops.get(account)
        if kept is None or kept[0] != size:
            return None
        top = kept[1]
        state = _state_root(note)
        if state is None or state != top.root():
            # The stored note is hostile: its state line must be the proven map's root,
            # whatever rows the proof holds (one forged row alone could match a forged
            # line along its honest path).
            return None
        rows = list(rows)
        wanted = [row_leaf(table, key, row) for table, key, row in rows]
        with self._lock:
            paths = self._paths.get((account, size, state), {})
        missing = {bucket_of(k) for k, leaf in wanted if paths.get(k, (None,))[0] != leaf}
        stored = tx.state_map.bucket_leaves(account, missing) if missing else {}
        proven, found = [], {}
        for (table, key, row), (k, leaf) in zip(rows, wanted, strict=True):
            known = paths.get(k)
            if known is not None and known[0] == leaf:
                encoded = known[1]
            else:
                siblings = prove(top, stored[bucket_of(k)], k)
                if root_from_path(k, leaf, siblings) != state:
                    return None
                encoded = [base64.b64encode(sibling).decode() for sibling in siblings]
                found[k] = (leaf, encoded)
            proven.append({"table": table, "key": list(key), "row": row, "siblings": encoded})
        if found:
            self._keep_paths(account, size, state, found)
        return {"checkpoint": note, "rows": proven}

    def _keep_paths(
        self, account: str, size: int, state: bytes, found: dict[bytes, tuple[bytes, list[str]]]
    ) -> None:
        """Keep the paths proven under the signed root of size ``size``: a later proof at
        that size of a row with the same leaf reuses its path. Paths of other sizes go."""
        with self._lock:
            kept = self._paths.get((account, size, state))
            if kept is None:
                self._paths = {
                    held: paths for held, paths in self._paths.items() if held[0] != account
                }
                kept = self._paths[(account, size, state)] = {}
            if len(kept) > PATH_CACHE_ROWS:
                kept.clear()
            kept.update(found)

    def wait(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the writer's next ``advance``."""
        with self._published:
            self._published.wait(timeout)

    def verify_all(self, store: Store, sidecar: Sidecar | None) -> dict[str, str]:
        """Prove every account with a ledger; return the unproven ones."""
        with store.read() as tx:
            accounts = tx.ledger.accounts()
            unbuilt = [account for account in accounts if tx.state_map.root(account) is None]
        for account in unbuilt:  # written before 0.3.0: its map is built from its rows,
            with store.write() as tx:  # which the proof then compares with a replay
                build_state_map(tx, account)
        for account in accounts:
            self.verify(store, account, sidecar)
        return self.problems()


@functools.lru_cache(maxsize=16)
def _state_root(note: str) -> bytes | None:
    """The ``tenure-state`` root of a stored checkpoint note (the newest few kept: most
    proofs in a row quote the same one)."""
    return parse_checkpoint(parse_note(note)[0]).state
