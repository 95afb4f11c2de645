"""The changes that go through the ledger writer outside its events (creating an
account or an API key, rotating the token signing key, subscribing a webhook,
raising an alert, ...): ``Operation``s of ``tenure.service.ledger`` that carry their
audit entry, so the writer records it in the transaction of the change."""

from __future__ import annotations

from dataclasses import dataclass, replace

from tenure.errors import TenureError
from tenure.service.audit import AuditEntry
from tenure.service.ledger import Outcome


@dataclass(frozen=True)
class AuditedChange:
    """An operation of ``account`` (its entry's) audited with ``entry``: allowed with
    code ``ok`` when ``run`` returns, denied with the error's code when it raises.
    Subclasses add their fields and ``run(tx)``."""

    entry: AuditEntry

    @property
    def account(self) -> str:
        return self.entry.account

    def audit_entry(self, outcome: Outcome | None, error: TenureError | None) -> AuditEntry:
        """The entry, with how the change ended."""
        if error is not None:
            return replace(self.entry, outcome="denied", code=error.code)
        target = self.entry.target or (outcome.result.get("id") if outcome else None)
        return replace(self.entry, outcome="allowed", code="ok", target=target)
