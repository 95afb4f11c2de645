"""An account whose ledger and audit chain grow together, as the writer grows them
(events and their entry in one transaction), for the tests of audit shipping."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from support.leaves import append_placeholders
from tenure.ledger.note import NoteSigner
from tenure.service import audit
from tenure.service.audit import AuditEntry
from tenure.store.unit import Store

ACCOUNT = "acme"
ORIGIN = "test.example/acme"
T0 = "2026-06-01T12:00:00.000000Z"
LEDGER = NoteSigner(ORIGIN, Ed25519PrivateKey.from_private_bytes(bytes([7]) * 32))


def ledger_signer(account: str) -> tuple[str, NoteSigner]:
    """The shipper's signer: every account signs with ``LEDGER``."""
    return ORIGIN, LEDGER


def mutation(store: Store, count: int) -> None:
    """A request that appends ``count`` events, audited in the same transaction."""
    with store.write() as tx:
        first = append_placeholders(tx, ACCOUNT, ORIGIN, count)
        entry = AuditEntry(
            ACCOUNT,
            "key_owner",
            "owner",
            "api_key",
            "issue_license",
            "allowed",
            "ok",
            events=(first, count),
        )
        audit.append(tx.audit, [entry], T0)


def check(store: Store, outcome: audit.Outcome = "allowed") -> None:
    """A decision: audited, no event."""
    entry = AuditEntry(ACCOUNT, "license:TNR-1", "license", "license", "check", outcome, "ok")
    with store.write() as tx:
        audit.append(tx.audit, [entry], T0)


def make_busy(store: Store) -> Store:
    """Five entries naming events 0..2 in ``store``: two mutations and three checks."""
    mutation(store, 2)
    check(store)
    mutation(store, 1)
    check(store, "denied")
    check(store)
    return store
