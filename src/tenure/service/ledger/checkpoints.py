"""Checkpointing by the ledger writer: when a checkpoint is due (``CheckpointPolicy``),
and signing one in the batch's transaction.

Checkpoints are signed every ``every_events`` events, after ``interval`` seconds
with unsigned events, on demand (``SignRequest``), and when the ledger closes.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from tenure.errors import LedgerTampered
from tenure.ledger.checkpoint import Checkpoint, sign_checkpoint
from tenure.ledger.note import NoteSigner
from tenure.service.ledger.session import AccountBatch, AccountCache
from tenure.store.records import StoredCheckpoint


@dataclass(frozen=True)
class CheckpointPolicy:
    every_events: int = 1000
    interval: float = 1.0
    sign_on_close: bool = True


class Signers(Protocol):
    """Where the writer gets a signer for an origin (a key store)."""

    def ledger_signer(self, origin: str) -> NoteSigner:
        """The signer whose key name is ``origin``."""
        ...


class Checkpointer:
    """Decides when to sign and signs, per ``policy``, with keys from ``signers``."""

    def __init__(self, policy: CheckpointPolicy, signers: Signers) -> None:
        self.policy = policy
        self._signers = signers

    def sign_if_due(self, account: str, state: AccountBatch, stamp: str, asked: bool) -> None:
        """Sign the batch's tree of ``account`` if it was ``asked`` (and has unsigned
        events) or ``every_events`` events were appended since the last checkpoint."""
        unsigned = state.frontier.size - state.signed_size
        # signed_size is -1 before the first checkpoint: count events, not sizes.
        since_signed = state.frontier.size - max(state.signed_size, 0)
        if (asked and unsigned > 0) or since_signed >= self.policy.every_events:
            state.checkpoint = self.sign(account, state, stamp)

    def sign(self, account: str, state: AccountBatch, stamp: str) -> str | None:
        """Sign the batch's tree; None if another process already signed that size.

        ``state.frontier`` is the head read under the account's lock (``open``), so
        the checkpoint is of the current tree; the stored checkpoints are read under
        that lock too, since the cached ``signed_size`` does not see other processes.
        Raises ``LedgerTampered`` if a stored checkpoint contradicts the tree.
        """
        ledger = state.tx.ledger
        stored = ledger.checkpoint(account)
        if stored is not None and stored.size >= state.frontier.size:
            if stored.size > state.frontier.size or stored.root != state.frontier.root():
                raise LedgerTampered(
                    f"checkpoint {stored.size} of {account} does not match the tree of "
                    f"size {state.frontier.size} being signed",
                    seq=min(stored.size, state.frontier.size),
                )
            state.signed_size = stored.size
            return None
        checkpoint = Checkpoint(
            state.origin, state.frontier.size, state.frontier.root(), state.top.root()
        )
        signer = self._signers.ledger_signer(state.origin)
        note = sign_checkpoint(checkpoint, [signer])
        verifier = signer.verifier
        ledger.record_verifier_key(account, verifier.key_id.hex(), verifier.key_string(), stamp)
        ledger.add_checkpoint(
            account, StoredCheckpoint(checkpoint.size, checkpoint.root, note, stamp)
        )
        state.signed_size = checkpoint.size
        return note

    def idle_wait(self, cache: Mapping[str, AccountCache]) -> float | None:
        """Seconds until the next checkpoint is due by time; None if none is pending."""
        pending = [c.signed_at for c in cache.values() if c.frontier.size > c.signed_size]
        if not pending:
            return None
        return max(0.01, min(pending) + self.policy.interval - time.monotonic())

    def due(self, cache: Mapping[str, AccountCache], force: bool, now: float) -> list[str]:
        """The accounts with unsigned events whose ``interval`` has passed (all of
        them with ``force``)."""
        return [
            account
            for account, c in cache.items()
            if c.frontier.size > c.signed_size
            and (force or now - c.signed_at >= self.policy.interval)
        ]
