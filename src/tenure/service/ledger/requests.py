"""What callers hand the ledger writer, and what it answers: a ``Submission`` (a
command), a ``SignRequest``, an ``AuditRequest``, or an ``Operation`` (a change
outside the ledger's events); each is answered with an ``Outcome`` or an error."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from tenure.canonical import canonical_json
from tenure.domain.commands import Command
from tenure.domain.events import Actor, Event
from tenure.errors import TenureError
from tenure.service.audit import AuditEntry, Caller
from tenure.store.unit import Transaction


@dataclass(frozen=True)
class Submission:
    """A command as a principal asked for it."""

    account: str
    command: Command
    actor: Actor
    reason: str | None = None
    idempotency_key: str | None = None
    at: datetime | None = None
    """Event time for deterministic workloads (demo, tests); None means the clock."""

    @classmethod
    def by(cls, caller: Caller, command: Command, reason: str | None = None) -> Submission:
        """``command`` as ``caller`` asked for it, in the caller's account."""
        return cls(caller.account, command, Actor(caller.id, caller.role, caller.auth), reason)

    def request_hash(self) -> str:
        content = {"request": self.command.request(), "reason": self.reason, "actor": self.actor.id}
        return hashlib.sha256(canonical_json(content)).hexdigest()

    def audit_entry(self, outcome: Outcome | None, error: TenureError | None) -> AuditEntry:
        """The audit entry of this submission, answered with ``outcome`` or ``error``."""
        events = outcome.events if outcome else ()
        target = events[0].subject if events else getattr(self.command, "serial", None)
        field_at_fault = error.context.get("field") if error is not None else None
        detail = {"field": field_at_fault} if field_at_fault else None
        return AuditEntry(
            self.account,
            self.actor.id,
            self.actor.role,
            self.actor.auth,
            self.command.name,
            "denied" if error is not None else "allowed",
            error.code
            if error is not None
            else ("replayed" if outcome and outcome.replayed else "ok"),
            target=target,
            rationale=self.reason,
            events=(events[0].seq, len(events)) if events else None,
            detail=detail,
        )


@dataclass(frozen=True)
class Outcome:
    """What a submission did: its result and the events it appended."""

    result: dict[str, Any]
    events: tuple[Event, ...] = ()
    replayed: bool = False


@dataclass(frozen=True)
class SignRequest:
    """Ask the writer to sign a checkpoint of ``account`` now."""

    account: str


@dataclass(frozen=True)
class AuditRequest:
    """Audit entries to chain (decisions, refused requests); nothing else is written."""

    entries: tuple[AuditEntry, ...]
    synced: bool = True
    """False: a batch of only such requests commits without waiting for the disk
    (``TENURE_DECISION_SYNC=os``): durable once the operating system holds it, which
    a crash of the server process does not undo, but a crash of the machine (or of
    PostgreSQL) may."""

    @property
    def account(self) -> str:
        return self.entries[0].account if self.entries else ""


class Operation(Protocol):
    """A change outside the ledger's events (API keys, accounts, webhooks, ...), made
    in the writer's transaction and audited in it: a frozen dataclass per operation.

    ``run`` gets the batch's transaction and runs inside a savepoint: if it raises a
    ``TenureError`` its writes are undone and the request is answered with that error
    and audited as denied with its code; its result (a JSON object) is the answer.
    ``audit_entry`` gives the entry for either outcome; it belongs to ``account``'s
    audit chain (the writer locks that account)."""

    @property
    def account(self) -> str: ...

    def run(self, tx: Transaction) -> Any: ...

    def audit_entry(self, outcome: Outcome | None, error: TenureError | None) -> AuditEntry: ...


Request = Submission | SignRequest | AuditRequest | Operation
"""What the writer takes: each kind has its handler (``tenure.service.ledger.kinds``)."""
