"""How the writer handles each kind of request: a table keyed by the request's type
(``KINDS``); any other type is an ``Operation``.

A kind says how a request runs in a batch, which audit entries answer it, which
accounts' heads it may move (the writer locks them before reading any), and whether
its success changes rows that other processes' writers keep in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from tenure.errors import TenureError
from tenure.service.audit import AuditEntry
from tenure.service.ledger.requests import (
    AuditRequest,
    Operation,
    Outcome,
    Request,
    SignRequest,
    Submission,
)
from tenure.service.ledger.session import AccountBatch, Appender
from tenure.store.writing import WriterTransaction


@dataclass
class Batch:
    """A write batch in progress: its transaction and the accounts it opened."""

    tx: WriterTransaction
    appender: Appender
    accounts: dict[str, AccountBatch] = field(default_factory=dict)

    def account(self, account: str) -> AccountBatch:
        """The batch's state of ``account``, opened on first use in the batch."""
        state = self.accounts.get(account)
        if state is None:
            state = self.accounts[account] = self.appender.open(self.tx, account)
        return state


@dataclass(frozen=True)
class Kind:
    """What the writer does with one type of request (see the module doc)."""

    handle: Callable[[Batch, Any], Outcome]
    """Run the request in the batch; a ``TenureError`` answers it."""
    audit_entries: Callable[[Any, Outcome | None, TenureError | None], tuple[AuditEntry, ...]]
    """The entries that answer it, given its outcome or error."""
    locks: Callable[[Any], Iterable[str]]
    """The accounts whose ledger or audit head it may move."""
    audits_itself: bool
    """Whether its entry is its own (a refused value is then audited alone)."""
    announced: bool
    """Whether its success changes rows other writers keep (beyond the ledger's)."""


def _submit(batch: Batch, request: Submission) -> Outcome:
    return batch.appender.run(batch.account(request.account), request)


def _sign(batch: Batch, request: SignRequest) -> Outcome:
    batch.account(request.account)  # opened, so that the batch signs it (flush)
    return Outcome({"account": request.account})


def _audit(batch: Batch, request: AuditRequest) -> Outcome:
    return Outcome({"audited": len(request.entries)})


def _operate(batch: Batch, request: Operation) -> Outcome:
    with batch.tx.savepoint():
        return Outcome(request.run(batch.tx))


def _own_entry(
    request: Submission | Operation, outcome: Outcome | None, error: TenureError | None
) -> tuple[AuditEntry, ...]:
    return (request.audit_entry(outcome, error),)


def _one_account(request: Submission | SignRequest | Operation) -> Iterable[str]:
    return (request.account,)


KINDS: dict[type, Kind] = {
    Submission: Kind(_submit, _own_entry, _one_account, audits_itself=True, announced=False),
    SignRequest: Kind(_sign, lambda *_: (), _one_account, audits_itself=False, announced=False),
    AuditRequest: Kind(
        _audit,
        lambda request, *_: request.entries,
        lambda request: (entry.account for entry in request.entries),
        audits_itself=False,
        announced=False,
    ),
}
"""The request kinds the writer knows; any other request is an ``Operation``."""

OPERATION = Kind(_operate, _own_entry, _one_account, audits_itself=True, announced=True)


def kind_of(request: Request) -> Kind:
    """The kind of ``request``: its type's in ``KINDS``, else ``OPERATION``."""
    return KINDS.get(type(request), OPERATION)
