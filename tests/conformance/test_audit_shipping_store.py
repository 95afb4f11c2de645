"""Audit shipping on every store (memory, SQLite, PostgreSQL): a chain read from a
store, shipped and proven, is written into another store by a restore, verifies
there, and goes on from its restored head; the continued chain ships from that
store and proves again."""

from __future__ import annotations

from pathlib import Path

from support.audit_chains import ACCOUNT, LEDGER, ORIGIN, check, ledger_signer, make_busy
from support.leaves import append_placeholders
from tenure.durability import audit_shipping
from tenure.durability.shipping import Shipper
from tenure.durability.sites import open_site
from tenure.service import audit
from tenure.store.memory import MemoryStore
from tenure.store.unit import Store


def _chain(store: Store) -> list[audit.AuditRecord]:
    with store.read() as tx:
        return tx.audit.chain(ACCOUNT, -1, 10_000)


def test_a_restored_chain_verifies_and_continues_on_every_store(
    store: Store, tmp_path: Path
) -> None:
    source = make_busy(MemoryStore())
    site = open_site(tmp_path.as_uri())
    Shipper(source, [site], signer=ledger_signer).ship_once()
    shipped = audit_shipping.prove(site, ACCOUNT, ACCOUNT, [LEDGER.verifier], 3)
    assert (shipped.problem, shipped.size) == (None, 5)

    with store.write() as tx:
        append_placeholders(tx, ACCOUNT, ORIGIN, 3)
        audit_shipping.write(tx, ACCOUNT, shipped)
    assert _chain(store) == _chain(source)
    check(store, "denied")
    with store.read() as tx:
        report = audit.verify(tx.audit, ACCOUNT, 3)
        assert tx.audit.head(ACCOUNT) == (6, _chain(store)[5].hash)
    assert (report.size, report.events) == (6, (0, 3))

    # The restored store ships its chain on from the site's head, and it proves.
    Shipper(store, [site], signer=ledger_signer).ship_once()
    again = audit_shipping.prove(site, ACCOUNT, ACCOUNT, [LEDGER.verifier], 3)
    assert again.problem is None
    assert list(again.records) == _chain(store)
