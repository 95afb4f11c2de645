"""The persistence seam (``tenure.store.unit``) and the writer's typed operations, on
each backend: a ``Store``'s transactions commit what their block did and nothing of
a block that raised; the nouns read what the ledger writer appended; an
``Operation`` runs in the writer's transaction, undone when it refuses."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pytest

from support.shop import ACCOUNT, ACTOR, Shop
from tenure.app.runtime import Runtime
from tenure.errors import Conflict, TenureError
from tenure.ledger.merkle import tree_hash
from tenure.service.audit import AuditEntry
from tenure.service.ledger import Ledger, Outcome, SignRequest
from tenure.store.unit import SqlStore, Store, Transaction

OTHER = "unit-other"


def _entry(action: str) -> AuditEntry:
    return AuditEntry(ACCOUNT, ACTOR.id, ACTOR.role, ACTOR.auth, action, "allowed", "ok")


@dataclass(frozen=True)
class RememberKey:
    """A typed operation: records a verifier key, then refuses when ``refuse``."""

    account: str
    key_id: str
    refuse: bool = False

    def run(self, tx: Transaction) -> dict[str, Any]:
        tx.ledger.record_verifier_key(self.account, self.key_id, f"k+{self.key_id}", "2025")
        if self.refuse:
            raise Conflict("refused after writing")
        return {"id": self.key_id}

    def audit_entry(self, outcome: Outcome | None, error: TenureError | None) -> AuditEntry:
        entry = _entry("remember_key")
        if error is not None:
            return replace(entry, outcome="denied", code=error.code)
        return replace(entry, target=self.key_id)


def test_a_write_transaction_commits_what_its_block_did(runtime: Runtime) -> None:
    store: Store = SqlStore(runtime.store.engine)
    with store.write() as tx:
        tx.ledger.create_head(OTHER, "example.test/unit")
        tx.ledger.record_verifier_key(OTHER, "k1", "unit+k1+key", "2025-01-01T00:00:00Z")
    with store.read() as tx:
        head = tx.ledger.head(OTHER)
        assert head is not None
        assert (head.origin, head.size) == ("example.test/unit", 0)
        assert tx.ledger.verifier_keys(OTHER) == ["unit+k1+key"]
        assert OTHER in tx.ledger.accounts()


def test_a_write_transaction_whose_block_raises_leaves_nothing(runtime: Runtime) -> None:
    store: Store = SqlStore(runtime.store.engine)

    def fail_after_writing() -> None:
        with store.write() as tx:
            tx.ledger.create_head(OTHER, "example.test/unit")
            raise RuntimeError("the block fails")

    with pytest.raises(RuntimeError):
        fail_after_writing()
    with store.quick_read() as tx:
        assert tx.ledger.head(OTHER) is None


def test_the_nouns_read_what_the_writer_appended(runtime: Runtime, shop: Shop) -> None:
    serial = shop.license(shop.customer("unit-1"), "order-unit-1")
    shop.ledger.execute(SignRequest(ACCOUNT))
    store: Store = SqlStore(runtime.store.engine)
    with store.read() as tx:
        head = tx.ledger.head(ACCOUNT)
        assert head is not None
        assert head.size > 0
        leaves = list(tx.ledger.leaves(ACCOUNT))
        assert [seq for seq, _ in leaves] == list(range(head.size))
        latest = tx.ledger.checkpoint(ACCOUNT)
        assert latest is not None
        assert latest.size == head.size
        assert tree_hash(head.size, tx.ledger.nodes(ACCOUNT)) == latest.root
        assert tx.ledger.frontier(ACCOUNT, head.size).root() == latest.root
        license_row = tx.projection.row(ACCOUNT, "licenses", (serial,))
        assert license_row is not None
        assert license_row["serial"] == serial
        assert serial in [row["serial"] for row in tx.projection.rows(ACCOUNT, "licenses")]
        assert any(seq for seq, _ in tx.ledger.events_about(ACCOUNT, serial))
        assert tx.projection is tx.projection  # created once, on first use


def test_an_operation_runs_in_the_writers_transaction(runtime: Runtime, ledger: Ledger) -> None:
    assert ledger.execute(RememberKey(ACCOUNT, "op-1")).result == {"id": "op-1"}
    with pytest.raises(Conflict):
        ledger.execute(RememberKey(ACCOUNT, "op-2", refuse=True))
    with SqlStore(runtime.store.engine).read() as tx:
        assert tx.ledger.verifier_keys(ACCOUNT) == ["k+op-1"]  # op-2 was undone
