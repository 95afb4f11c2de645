"""Audit shipping over the memory store: the shipper sends each account's audit chain
with its ledger and signs the head; what a restore reads back is proven against that
head and cut to the restored ledger, and every way a site can lie is refused."""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support.audit_chains import (
    ACCOUNT,
    LEDGER,
    ORIGIN,
    check,
    ledger_signer,
    make_busy,
    mutation,
)
from support.leaves import append_placeholders
from tenure.durability import audit_shipping
from tenure.durability.audit_shipping import AuditUnproven, ShippedAudit, parse_name
from tenure.durability.shipping import Shipper, site_end
from tenure.durability.sites import Site, open_site
from tenure.ledger.note import NoteSigner
from tenure.service import audit
from tenure.store.memory import MemoryStore
from tenure.store.unit import Store

OTHER = NoteSigner(ORIGIN, Ed25519PrivateKey.from_private_bytes(bytes([8]) * 32))


def _busy_store() -> MemoryStore:
    store = MemoryStore()
    make_busy(store)
    return store


def _shipped(tmp_path: Path) -> tuple[MemoryStore, Site, Shipper]:
    """A busy store, a site, and its shipper after a first pass."""
    store, site = _busy_store(), open_site(tmp_path.as_uri())
    shipper = Shipper(store, [site], signer=ledger_signer)
    shipper.ship_once()
    return store, site, shipper


def _ranges(site: Site) -> list[tuple[int, int]]:
    return sorted((n.first, n.end) for p in _segments(site) if (n := parse_name(p)))


def _heads(site: Site) -> list[int]:
    """The sizes of the audit heads at the site."""
    prefix = f"{ACCOUNT}/audit/head-"
    return sorted(
        int(p.removeprefix(prefix))
        for p in site.list(prefix.rsplit("/", 1)[0])
        if p.startswith(prefix)
    )


def _ledger_size(store: Store) -> int:
    with store.read() as tx:
        head = tx.ledger.head(ACCOUNT)
    return head.size if head else 0


def _stored(store: Store) -> list[audit.AuditRecord]:
    with store.read() as tx:
        return tx.audit.chain(ACCOUNT, -1, 10_000)


def _proven(site: Site, size: int, whole: bool = True) -> ShippedAudit:
    return audit_shipping.prove(site, ACCOUNT, ACCOUNT, [LEDGER.verifier], size, whole=whole)


def _segments(site: Site) -> list[str]:
    return [p for p in site.list(f"{ACCOUNT}/audit/") if parse_name(p)]


def _rewrite(site: Site, path: str, old: bytes, new: bytes) -> None:
    """Edit a segment at the site and give it a valid checksum again (a forger's
    edit, not bit rot)."""
    data = site.get(path) or b""
    assert old in data
    body = data[: data.rindex(b"end ")].replace(old, new, 1)
    site.put(path, body + b"end " + hashlib.sha256(body).hexdigest().encode() + b"\n")


def test_a_shipped_chain_is_proven_and_continues_where_it_is_restored(tmp_path: Path) -> None:
    store, site, _ = _shipped(tmp_path)

    shipped = _proven(site, _ledger_size(store))
    assert shipped.problem is None
    assert (shipped.source, shipped.size, shipped.signed_size) == ("site", 5, 5)
    assert list(shipped.records) == _stored(store)

    restored = MemoryStore()
    with restored.write() as tx:
        audit_shipping.write(tx, ACCOUNT, shipped)
    check(restored)
    with restored.read() as tx:
        report = audit.verify(tx.audit, ACCOUNT, 3)
        assert tx.audit.chain(ACCOUNT, 3, 1)[0].entry == _stored(store)[4].entry
        newest = tx.audit.chain(ACCOUNT, 4, 1)[0]
    assert report.size == 6
    assert f'"prev":"{_stored(store)[4].hash.hex()}"'.encode() in newest.entry


def test_each_pass_ships_only_the_new_entries_and_signs_the_new_head(tmp_path: Path) -> None:
    store, site, shipper = _shipped(tmp_path)
    check(store)
    mutation(store, 2)
    shipper.ship_once()
    assert _ranges(site) == [(0, 5), (5, 7)]
    assert _heads(site) == [7]  # the head of 5 was deleted once that of 7 was written
    head = audit_shipping.site_head(site, ACCOUNT, ACCOUNT, [LEDGER.verifier])
    assert head == (7, _stored(store)[6].hash)
    # A new shipper (a restarted service) trusts the signed head and goes on from it.
    check(store)
    Shipper(store, [site], signer=ledger_signer).ship_once()
    assert _ranges(site) == [(0, 5), (5, 7), (7, 8)]
    assert _proven(site, 5).size == 8


def test_an_edited_entry_is_refused_even_with_a_fixed_checksum(tmp_path: Path) -> None:
    _, site, _ = _shipped(tmp_path)
    _rewrite(site, _segments(site)[0], b'"outcome":"denied"', b'"outcome":"allowed"')

    shipped = _proven(site, 3)
    assert shipped.problem is not None
    assert "truncated or altered" in shipped.problem
    with MemoryStore().write() as tx, pytest.raises(AuditUnproven, match="--without-audit"):
        audit_shipping.write(tx, ACCOUNT, shipped)


def test_a_missing_segment_is_refused(tmp_path: Path) -> None:
    store, site, shipper = _shipped(tmp_path)
    check(store)
    shipper.ship_once()
    site.delete(sorted(_segments(site))[-1])
    assert "truncated or altered" in (_proven(site, 3).problem or "")


def test_segments_without_a_head_are_refused_and_a_site_without_either_has_none(
    tmp_path: Path,
) -> None:
    _, site, _ = _shipped(tmp_path)
    site.delete(audit_shipping.head_path(ACCOUNT, 5))
    assert "no audit head" in (_proven(site, 3).problem or "")
    empty = open_site((tmp_path / "empty").as_uri())
    assert _proven(empty, 3) == ShippedAudit(source="none")


def test_a_head_signed_by_another_key_is_refused(tmp_path: Path) -> None:
    store = _busy_store()
    site = open_site(tmp_path.as_uri())
    Shipper(store, [site], signer=lambda _: (ORIGIN, OTHER)).ship_once()
    assert "not signed by the ledger key" in (_proven(site, 3).problem or "")


def test_an_older_head_put_back_is_caught_by_the_ledger_it_does_not_account_for(
    tmp_path: Path,
) -> None:
    store, site, shipper = _shipped(tmp_path)
    old_head = site.get(audit_shipping.head_path(ACCOUNT, 5)) or b""
    mutation(store, 4)
    shipper.ship_once()
    site.delete(audit_shipping.head_path(ACCOUNT, 6))
    site.put(audit_shipping.head_path(ACCOUNT, 5), old_head)
    assert "have no audit entry" in (_proven(site, 7).problem or "")
    # Restoring to a moment, the ledger is cut too: coverage is not asked for.
    assert _proven(site, 3, whole=False).size == 5


def test_a_second_shipper_at_once_cannot_put_an_older_head_over_a_newer_one(
    tmp_path: Path,
) -> None:
    store, site, late = _shipped(tmp_path)  # ``late`` read the store at 5 entries
    check(store)
    Shipper(store, [site], signer=ledger_signer).ship_once()  # ``tenure ship``: 6 entries
    late._audit.ship(site, ACCOUNT, ACCOUNT, (5, _stored(store)[4].hash), lambda: LEDGER)
    assert _heads(site) == [6]
    site.put(audit_shipping.head_path(ACCOUNT, 5), b"a late write of the head of 5")
    assert _proven(site, 3).size == 6


def test_a_forged_head_larger_than_the_signed_one_is_refused(tmp_path: Path) -> None:
    _, site, _ = _shipped(tmp_path)
    site.put(audit_shipping.head_path(ACCOUNT, 9), b"tenure-audit v1\nacme\n9\n" + b"0" * 64)
    assert "not signed by the ledger key" in (_proven(site, 3).problem or "")


def test_entries_naming_events_the_restore_does_not_hold_are_cut(tmp_path: Path) -> None:
    _, site, _ = _shipped(tmp_path)
    # The site's ledger segments stop at event 2: the entry naming event 2 and every
    # entry after it are not taken.
    shipped = _proven(site, 2)
    assert shipped.problem is None
    assert [r.action for r in shipped.records] == ["issue_license", "check"]


def test_a_chain_cut_at_restore_is_shipped_again_beside_the_old_one(tmp_path: Path) -> None:
    _, site, _ = _shipped(tmp_path)
    # A restore that held events 0 and 1 only took entries 0 and 1; the restored
    # service then went on: its entry 2 is not the site's entry 2.
    cut = _proven(site, 2)
    restored = MemoryStore()
    with restored.write() as tx:
        append_placeholders(tx, ACCOUNT, ORIGIN, 2)
        audit_shipping.write(tx, ACCOUNT, cut)
    check(restored, "denied")
    mutation(restored, 1)
    Shipper(restored, [site], signer=ledger_signer).ship_once()

    shipped = _proven(site, 3)
    assert shipped.problem is None
    assert list(shipped.records) == _stored(restored)
    # The old chain's segment and head stay, for forensics; the site's head is ours.
    assert len(_segments(site)) == 2
    assert len(site.list(f"{ACCOUNT}/audit/superseded/")) == 1
    assert _heads(site) == [4]


def test_restoring_to_a_moment_keeps_the_entries_written_until_then(tmp_path: Path) -> None:
    store, site, shipper = _shipped(tmp_path)
    later = audit.AuditEntry(ACCOUNT, "key_owner", "owner", "api_key", "check", "allowed", "ok")
    with store.write() as tx:
        audit.append(tx.audit, [later], "2026-06-02T12:00:00.000000Z")
    shipper.ship_once()
    moment = datetime(2026, 6, 1, 18, tzinfo=UTC)
    at_moment = audit_shipping.prove(
        site, ACCOUNT, ACCOUNT, [LEDGER.verifier], 3, at_time=moment, whole=False
    )
    assert (at_moment.problem, at_moment.size) == (None, 5)
    assert _proven(site, 3).size == 6


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_damage_to_a_segment_is_refused_never_raised(
    tmp_path: Path, data: st.DataObject
) -> None:
    site = _damage_site(tmp_path)
    [path] = _segments(site)
    original = site.get(path) or b""
    at = data.draw(st.integers(0, len(original) - 1), label="at")
    cut = data.draw(st.integers(0, 8), label="cut")
    inserted = data.draw(st.binary(max_size=8), label="inserted")
    damaged = original[:at] + inserted + original[at + cut :]
    site.put(path, damaged)
    try:
        shipped = _proven(site, 3)
    finally:
        site.put(path, original)
    assert shipped.problem is not None or damaged == original


def _damage_site(tmp_path: Path) -> Site:
    """One site per test (not per example): the busy store's chain, shipped once."""
    root = tmp_path / "site"
    if not root.exists():
        Shipper(_busy_store(), [open_site(root.as_uri())], signer=ledger_signer).ship_once()
    return open_site(root.as_uri())


def test_a_damaged_audit_table_is_logged_and_does_not_hold_the_ledger_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store, site, shipper = _shipped(tmp_path)
    mutation(store, 2)
    with store.write() as tx:  # a head naming entries the table does not hold
        tx.audit.append(ACCOUNT, [], 9, bytes(32))
    with caplog.at_level(logging.ERROR, logger="tenure.shipping"):
        shipper.ship_once()
    assert site_end(site, ACCOUNT) == 5
    assert "audit chain of acme not shipped" in caplog.text
    assert _heads(site) == [5]
