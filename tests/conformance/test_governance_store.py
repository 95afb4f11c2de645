"""The governance store nouns (``tenure.store.accounts``, ``apikeys``, ``audit``,
``signing_keys``, ``revocations``, ``listings``) behave alike on every store: in
memory, on SQLite and on PostgreSQL, through the Protocols services use."""

from __future__ import annotations

from typing import Any

from support.stores import event_row, license_row
from tenure.canonical import canonical_json
from tenure.store.accounts import StoredAccount
from tenure.store.apikeys import StoredKey
from tenure.store.audit import AuditFilter, AuditRecord
from tenure.store.signing_keys import StoredSigningKey
from tenure.store.unit import Store

ACCOUNT = "acme"
OTHER = "other"
T0 = "2026-06-01T12:00:00.000000Z"
T1 = "2026-06-01T12:01:00.000000Z"
T2 = "2026-06-01T12:02:00.000000Z"


"""An empty store of each kind in turn (memory, SQLite, PostgreSQL)."""


# ---------------------------------------------------------------- accounts and keys


def test_accounts_are_listed_by_id_and_found_alone(store: Store) -> None:
    with store.write() as tx:
        tx.accounts.add(StoredAccount("zeta", "Zeta", T1, "key_a"))
        tx.accounts.add(StoredAccount("acme", "Acme", T0, "system"))
    with store.read() as tx:
        assert [a.id for a in tx.accounts.listing()] == ["acme", "zeta"]
        assert tx.accounts.listing("zeta") == [StoredAccount("zeta", "Zeta", T1, "key_a")]
        assert tx.accounts.get("acme") == StoredAccount("acme", "Acme", T0, "system")
        assert tx.accounts.get("nobody") is None


def _key(key_id: str, role: str = "owner", at: str = T0, **more: Any) -> StoredKey:
    return StoredKey(key_id, ACCOUNT, key_id.ljust(64, "0"), role, key_id, at, **more)


def test_keys_are_listed_oldest_first_and_found_only_in_their_account(store: Store) -> None:
    with store.write() as tx:
        tx.apikeys.add(_key("key_b", at=T1, created_by="key_a"))
        tx.apikeys.add(_key("key_a"))
        tx.apikeys.add(_key("key_c", "issuer", T1))
    with store.read() as tx:
        assert [k.id for k in tx.apikeys.listing(ACCOUNT)] == ["key_a", "key_b", "key_c"]
        assert tx.apikeys.get(ACCOUNT, "key_b") == _key("key_b", at=T1, created_by="key_a")
        assert tx.apikeys.get(OTHER, "key_b") is None
        assert tx.apikeys.count(ACCOUNT) == 3
        assert tx.apikeys.count(OTHER) == 0
        assert tx.apikeys.listing(OTHER) == []


def test_a_revoked_key_is_not_found_by_hash_nor_counted_as_an_owner(store: Store) -> None:
    with store.write() as tx:
        tx.apikeys.add(_key("key_a"))
        tx.apikeys.add(_key("key_b"))
        tx.apikeys.add(_key("key_c", "admin"))
    with store.write() as tx:
        assert tx.apikeys.active_owners(ACCOUNT, besides="key_a") == 1
        tx.apikeys.revoke(ACCOUNT, "key_b", T2)
    with store.read() as tx:
        assert tx.apikeys.active_owners(ACCOUNT, besides="key_a") == 0
        assert tx.apikeys.active_by_hash(_key("key_b").key_hash) is None
        assert tx.apikeys.active_by_hash(_key("key_a").key_hash) == _key("key_a")
        assert tx.apikeys.get(ACCOUNT, "key_b") == _key("key_b", revoked_at=T2)


# ---------------------------------------------------------------- audit chain


def _record(seq: int, action: str = "check", outcome: str = "allowed", at: str = T0) -> AuditRecord:
    entry = canonical_json({"seq": seq, "action": action})
    return AuditRecord(seq, at, "key_a", action, outcome, f"TNR-{seq}", entry, bytes([seq]) * 32)


def test_the_audit_chain_pages_both_ways_with_filters_and_keeps_its_head(store: Store) -> None:
    everything = AuditFilter()
    records = [_record(0), _record(1, "revoke", "denied", T1), _record(2, at=T2)]
    with store.write() as tx:
        assert tx.audit.head(ACCOUNT) is None
        tx.audit.append(ACCOUNT, records[:2], 2, records[1].hash)
        tx.audit.append(ACCOUNT, records[2:], 3, records[2].hash)
    with store.read() as tx:
        assert tx.audit.head(ACCOUNT) == (3, records[2].hash)
        assert tx.audit.accounts() == [ACCOUNT]
        oldest = tx.audit.page(ACCOUNT, None, 2, everything, newest_first=False)
        assert oldest == [(r.seq, r.entry, r.hash) for r in records[:2]]
        newest = tx.audit.page(ACCOUNT, 2, 5, everything, newest_first=True)
        assert [seq for seq, _, _ in newest] == [1, 0]
        checks = tx.audit.page(ACCOUNT, 0, 5, AuditFilter(action="check"), newest_first=False)
        assert [seq for seq, _, _ in checks] == [2]
        assert tx.audit.chain(ACCOUNT, 0, 1) == records[1:2]
        assert tx.audit.outcomes(ACCOUNT, "check", T0) == {"allowed": 2}
        assert tx.audit.outcomes(ACCOUNT, "revoke", T2) == {}
        assert tx.audit.page(OTHER, None, 5, everything, newest_first=False) == []


# ---------------------------------------------------------------- token signing keys


def test_the_newest_signing_key_not_retired_is_current(store: Store) -> None:
    with store.write() as tx:
        assert tx.signing_keys.current(ACCOUNT) is None
        tx.signing_keys.add(ACCOUNT, StoredSigningKey("kid_a", "xa", T0))
        tx.signing_keys.add(OTHER, StoredSigningKey("kid_z", "xz", T2))
    with store.write() as tx:
        assert tx.signing_keys.current(ACCOUNT) == "kid_a"
        tx.signing_keys.retire(ACCOUNT, T1, T2)
        tx.signing_keys.add(ACCOUNT, StoredSigningKey("kid_b", "xb", T1))
    with store.read() as tx:
        assert tx.signing_keys.current(ACCOUNT) == "kid_b"
        assert tx.signing_keys.listing(ACCOUNT) == [
            StoredSigningKey("kid_b", "xb", T1),
            StoredSigningKey("kid_a", "xa", T0, T1, T2),
        ]


# ---------------------------------------------------------------- revocations and listings


def test_revoking_events_are_found_by_type_from_a_seq_and_counted_from_a_time(
    store: Store,
) -> None:
    kinds = ["license.revoked", "license.created", "token.revoked", "license.revoked"]
    rows = [
        event_row(seq, kind, at)
        for seq, (kind, at) in enumerate(zip(kinds, [T0, T1, T1, T2], strict=True))
    ]
    with store.write() as tx:
        head = tx.ledger.create_head(ACCOUNT, "test/ledger/acme")
        tx.ledger.append_events(ACCOUNT, rows)
        tx.ledger.move_head(ACCOUNT, head.size, len(rows))
    with store.read() as tx:
        found = tx.revocations.events(ACCOUNT, 1, ("license.revoked", "token.revoked"))
        assert found == [(2, rows[2].leaf), (3, rows[3].leaf)]
        assert tx.revocations.revoked_since(ACCOUNT, T1) == 1
        assert tx.revocations.revoked_since(ACCOUNT, T0) == 2
        assert tx.revocations.revoked_since(OTHER, T0) == 0


def _activation(activation: str, serial: str) -> dict[str, Any]:
    return {
        "activation": activation,
        "serial": serial,
        "fingerprint_hash": activation.ljust(64, "0"),
        "mode": "floating",
        "status": "active",
        "lease_expires_at": None,
    }


def test_listings_find_projection_rows_by_other_columns_than_their_key(store: Store) -> None:
    licenses = [
        license_row("TNR-1", expires_at=T0),
        license_row("TNR-2", status="suspended"),
        {**license_row("TNR-3", expires_at=T2), "plan": "basic"},
    ]
    customers = [
        {"customer": c, "name": None, "email": None, "external_id": None}
        for c in ("cus_a%", "cus_ab", "cus_b")
    ]
    with store.write() as tx:
        tx.projection.write(ACCOUNT, "licenses", licenses, [])
        activations = [_activation("act_2", "TNR-1"), _activation("act_1", "TNR-1")]
        tx.projection.write(
            ACCOUNT, "activations", [*activations, _activation("act_3", "TNR-3")], []
        )
        tx.projection.write(ACCOUNT, "customers", customers, [])
        tx.projection.write(OTHER, "customer_erasures", [{"customer": "cus_x"}], [])
    with store.read() as tx:
        assert [r["activation"] for r in tx.listings.activations_of(ACCOUNT, "TNR-1")] == [
            "act_1",
            "act_2",
        ]
        assert tx.listings.activations_of(ACCOUNT, "TNR-1")[0] == _activation("act_1", "TNR-1")
        assert tx.listings.plan_in_use(ACCOUNT, "basic")
        assert not tx.listings.plan_in_use(ACCOUNT, "gold")
        assert tx.listings.license_statuses(ACCOUNT) == {"active": 2, "suspended": 1}
        assert tx.listings.expired_active(ACCOUNT, T1) == ["TNR-1"]
        assert tx.listings.customer_ids(ACCOUNT, None, "cus_a%", 5) == ["cus_a%"]
        assert tx.listings.customer_ids(ACCOUNT, "cus_a%", None, 1) == ["cus_ab"]
        assert tx.listings.erased_customers() == [(OTHER, "cus_x")]
