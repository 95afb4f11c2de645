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

import logging
import threading

from tenure.errors import LedgerTampered, NotFound, StateUnverified
from tenure.service.sidecar import Sidecar
from tenure.service.verify import verify_ledger
from tenure.store.unit import Store

_log = logging.getLogger("tenure.state")


class StateGuard:
    """The accounts found unproven, with why; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._problems: dict[str, str] = {}

    def require(self, account: str) -> None:
        """``StateUnverified`` when ``account``'s state was found unproven."""
        problem = self._problems.get(account)
        if problem is not None:
            raise StateUnverified(
                f"the stored state of {account} does not prove against the signed ledger "
                f"({problem}); checks and appends are refused until `tenure state rebuild` "
                "or a restore"
            )

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

    def verify(self, store: Store, account: str, sidecar: Sidecar | None) -> str | None:
        """Prove ``account`` (see the module doc), record and return what failed."""
        try:
            verify_ledger(store, account, sidecar, replay_state=False)
        except NotFound:
            problem = None
        except LedgerTampered as exc:
            problem = exc.message
        else:
            problem = None
        self.record(account, problem)
        return problem

    def verify_all(self, store: Store, sidecar: Sidecar | None) -> dict[str, str]:
        """Prove every account with a ledger; return the unproven ones."""
        with store.read() as tx:
            accounts = tx.ledger.accounts()
        for account in accounts:
            self.verify(store, account, sidecar)
        return self.problems()
