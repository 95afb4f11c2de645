"""The use cases of the token signing keys: rotating an account's key (once a second
principal approved it: ``keys.rotate`` is gated)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tenure.service.apikeys import Principal
from tenure.service.audit import request_entry
from tenure.service.handlers import Submit
from tenure.service.handlers.audited import AuditedChange
from tenure.service.keyring import KeyRing
from tenure.store.unit import Transaction


@dataclass(frozen=True)
class RotateSigningKey(AuditedChange):
    """Retire the account's current signing key and make a new one at ``now`` →
    ``{"id", "kid", "created_at"}`` of the new key."""

    keyring: KeyRing = field(repr=False)
    now: datetime

    def run(self, tx: Transaction) -> dict[str, Any]:
        return self.keyring.rotate_in(tx, self.account, self.now)


def rotate_signing_key(
    submit: Submit, keyring: KeyRing, caller: Principal, action: str
) -> dict[str, Any]:
    """Rotate the caller's account's token signing key now, audited as ``action``
    (the decision that executes the approved rotation) → the new key."""
    entry = request_entry(caller, action, target="keys.rotate")
    result: dict[str, Any] = submit(RotateSigningKey(entry, keyring, datetime.now(UTC))).result
    return result
