"""Durability over the memory store: the shipper (a ``tenure.workers.Worker``) ships
from any ``Store``, and a stopped one makes a last pass; drills are kept per account."""

from __future__ import annotations

from pathlib import Path

from support.leaves import append_placeholders
from tenure.durability import drill, segments
from tenure.durability.shipping import Shipper, site_end
from tenure.durability.sites import open_site
from tenure.store.drills import DrillReport
from tenure.store.memory import MemoryStore
from tenure.store.unit import Store

ACCOUNT = "acme"
T0 = "2026-06-01T12:00:00.000000Z"


def _leaf(seq: int) -> bytes:
    return f'{{"account":"{ACCOUNT}","seq":{seq}}}'.encode()


def _append(store: Store, count: int) -> None:
    """``count`` more events in the account's ledger (created if need be)."""
    with store.write() as tx:
        append_placeholders(tx, ACCOUNT, "test.example/acme", count)


def test_the_shipper_ships_every_new_event_of_a_store_to_a_site(tmp_path: Path) -> None:
    store = MemoryStore()
    site = open_site(tmp_path.as_uri())
    _append(store, 3)
    report = Shipper(store, [site]).ship_once()
    _append(store, 2)
    again = Shipper(store, [site]).ship_once()
    assert (report.shipped, again.shipped) == ({site.url: 3}, {site.url: 2})
    assert site_end(site, ACCOUNT) == 5
    names = [n for p in site.list(f"{ACCOUNT}/segments/") if (n := segments.parse_name(p))]
    leaves = segments.decode(site.get(names[-1].path(ACCOUNT)) or b"", ACCOUNT, names[-1])
    assert leaves == [_leaf(3), _leaf(4)]


def test_a_stopped_shipper_ships_what_was_committed_since_its_last_pass(tmp_path: Path) -> None:
    store = MemoryStore()
    site = open_site(tmp_path.as_uri())
    shipper = Shipper(store, [site], interval=3600)
    assert shipper.start()
    assert shipper.running
    _append(store, 4)
    shipper.stop()  # long before the first interval ends
    assert not shipper.running
    assert site_end(site, ACCOUNT) == 4
    assert shipper.status()["behind"] == {site.url: 0}


def test_a_shipper_without_sites_does_not_start() -> None:
    shipper = Shipper(MemoryStore(), [])
    assert not shipper.start()
    assert not shipper.running
    shipper.stop()


def test_the_latest_drill_of_an_account_is_its_newest() -> None:
    store = MemoryStore()
    older = DrillReport(ACCOUNT, T0, "file:///s", True, 1.0, 0, 0.0, 5, 5, "ok")
    newer = DrillReport(
        ACCOUNT, "2026-06-02T12:00:00.000000Z", "file:///s", False, 1.0, 2, 1.0, 3, 5, "no"
    )
    drill.record(store, newer)
    drill.record(store, older)
    assert drill.latest(store, ACCOUNT) == newer
    assert drill.latest(store, "other") is None
