"""Event envelopes and data schemas: what ``event_from_json`` accepts and how it refuses."""

from __future__ import annotations

import contextlib
import copy
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tenure.canonical import canonical_json
from tenure.domain.commands import customer_id, license_serial
from tenure.domain.events import (
    EVENT_TYPES,
    REASON_REQUIRED,
    Event,
    event_from_json,
    upcast,
    validate_data,
)
from tenure.errors import MalformedEvent, UnknownEventType

CUSTOMER = customer_id("default", "crm-1")
OTHER_CUSTOMER = customer_id("default", "crm-2")
SERIAL = license_serial("default", "acme", CUSTOMER, "order-1")
TIME = "2026-11-28T22:00:00.000000Z"

ACTIVATION = "act_" + "b" * 26
APPROVAL = "apr_" + "a" * 26
VALID_DATA: dict[str, dict[str, Any]] = {
    "product.defined": {"product": "acme", "name": "Acme Suite", "features": ["sso", "audit"]},
    "plan.published": {
        "plan": "pro",
        "product": "acme",
        "version": 1,
        "entitlements": {"seats": 10, "feature:sso": True, "quota:api": 0, "module:x": False},
        "core": ["seats"],
        "duration": "P365D",
        "grace": "P14D",
        "offline_token_ttl": "PT24H",
        "activation": "floating",
    },
    "customer.created": {
        "customer": CUSTOMER,
        "name": "Ada",
        "email": None,
        "external_id": "crm-1",
    },
    "customer.erased": {"customer": CUSTOMER},
    "license.issued": {
        "serial": SERIAL,
        "product": "acme",
        "plan": "pro",
        "plan_version": 1,
        "customer": CUSTOMER,
        "order_ref": "order-1",
        "key_hash": "ab" * 32,
        "issued_at": TIME,
        "expires_at": "2027-11-28T22:00:00.000000Z",
    },
    "license.renewed": {"serial": SERIAL, "expires_at": "2028-11-28T22:00:00.000000Z"},
    "license.suspended": {"serial": SERIAL},
    "license.reinstated": {"serial": SERIAL},
    "license.revoked": {"serial": SERIAL},
    "license.plan_changed": {"serial": SERIAL, "plan": "team", "plan_version": 2},
    "license.entitlement_overridden": {
        "serial": SERIAL,
        "entitlement": "seats",
        "value": 25,
    },
    "license.transferred": {"serial": SERIAL, "customer": OTHER_CUSTOMER},
    "activation.created": {
        "activation": ACTIVATION,
        "serial": SERIAL,
        "fingerprint_hash": "ab" * 32,
        "mode": "floating",
        "lease_expires_at": "2026-11-29T02:00:00.000000Z",
    },
    "activation.renewed": {
        "activation": ACTIVATION,
        "serial": SERIAL,
        "lease_expires_at": "2026-11-29T02:15:00.000000Z",
    },
    "activation.deactivated": {"activation": ACTIVATION, "serial": SERIAL},
    "token.revoked": {"serial": SERIAL, "jti": "tok_" + "a" * 26},
    "ledger.restored": {
        "site": "file:///srv/backup",
        "size": 812,
        "root": "ab" * 32,
        "digest": "cd" * 32,
        "snapshot": 800,
    },
    "license.legacy_mapped": {
        "serial": SERIAL,
        "system": "keymaster",
        "legacy_id": "KM-1",
        "legacy_key_hash": "ab" * 32,
    },
    "ledger.epoch_started": {
        "epoch": 2,
        "previous_checkpoint": "tenure.localhost/ledger/default\n900\nAAAA\n\n— sig\n",
        "kept": 812,
        "lost": 88,
        "site": "file:///srv/backup",
        "digest": "cd" * 32,
        "snapshot": 800,
    },
    "plan.retired": {"plan": "pro"},
    "approval.requested": {
        "approval": APPROVAL,
        "action": "license.revoke",
        "target": SERIAL,
        "payload": {"serials": [SERIAL]},
        "requested_by": "key_abc",
        "expires_at": "2026-01-02T03:04:05.000000Z",
    },
    "approval.approved": {"approval": APPROVAL},
    "approval.rejected": {"approval": APPROVAL},
    "approval.expired": {"approval": APPROVAL},
    "approval.executed": {"approval": APPROVAL, "outcome": "succeeded", "detail": None},
}


def envelope(type_name: str = "license.suspended", **changes: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": "evt_" + "0123456789abcdef" * 2,
        "account": "default",
        "seq": 7,
        "type": type_name,
        "schema": 1,
        "time": TIME,
        "actor": {"id": "usr_1", "role": "admin", "auth": "api_key"},
        "reason": "customer asked",
        "idempotency_key": None,
        "data": copy.deepcopy(VALID_DATA[type_name]) if type_name in VALID_DATA else {},
    }
    obj.update(changes)
    return obj


def refused(obj: Any, field: str | None) -> MalformedEvent:
    with pytest.raises(MalformedEvent) as info:
        event_from_json(obj)
    error = info.value
    assert error.field == field, f"field {error.field!r} != {field!r}: {error}"
    assert error.message
    assert "\n" not in error.message
    return error


def with_data(type_name: str, **changes: Any) -> dict[str, Any]:
    data = {**copy.deepcopy(VALID_DATA[type_name]), **changes}
    return envelope(type_name, data=data)


# ---------------------------------------------------------------- valid events


def test_every_known_event_type_has_a_valid_example() -> None:
    assert set(VALID_DATA) == set(EVENT_TYPES)


@pytest.mark.parametrize("type_name", sorted(VALID_DATA))
def test_valid_event_of_each_type_is_accepted_and_round_trips(type_name: str) -> None:
    obj = envelope(type_name)
    event = event_from_json(obj)
    assert isinstance(event, Event)
    assert event.to_json() == obj
    assert event.leaf() == canonical_json(obj)
    assert event_from_json(orjson.loads(event.leaf())) == event
    assert event.subject == obj["data"][EVENT_TYPES[type_name].subject]


def test_reason_and_idempotency_key_may_be_null_where_no_reason_is_required() -> None:
    event = event_from_json(envelope("license.renewed", reason=None, idempotency_key=None))
    assert event.reason is None
    event = event_from_json(envelope("product.defined", reason=None, idempotency_key="k" * 255))
    assert event.idempotency_key == "k" * 255


def test_seq_zero_is_a_valid_sequence_number() -> None:
    assert event_from_json(envelope(seq=0)).seq == 0


def test_override_may_remove_an_entitlement_with_null() -> None:
    event = event_from_json(with_data("license.entitlement_overridden", value=None))
    assert event.data["value"] is None


# ---------------------------------------------------------------- envelopes


@pytest.mark.parametrize("obj", [None, [], "event", 7, True])
def test_envelope_that_is_not_an_object_is_refused(obj: Any) -> None:
    refused(obj, None)


@pytest.mark.parametrize("key", sorted(envelope()))
def test_envelope_missing_a_key_is_refused_naming_the_key(key: str) -> None:
    obj = envelope()
    del obj[key]
    error = refused(obj, key)
    assert "envelope" in error.message


@pytest.mark.parametrize("key", ["extra", "signature", "Seq"])
def test_envelope_with_an_extra_key_is_refused_naming_the_key(key: str) -> None:
    refused({**envelope(), key: 1}, key)


@pytest.mark.parametrize(
    "value",
    [
        "evt_" + "0" * 31,
        "evt_" + "0" * 33,
        "evt_" + "A" * 32,
        "EVT_" + "0" * 32,
        "evt-" + "0" * 32,
        "evt_" + "g" * 32,
        "evt_" + "0" * 32 + "\n",
        "",
        None,
        7,
    ],
)
def test_bad_event_id_is_refused(value: Any) -> None:
    refused(envelope(id=value), "id")


@pytest.mark.parametrize(
    "value", ["", "Default", "-x", "a" * 64, "a b", "caf\u00e9", "acct\n", None, 1]
)
def test_bad_account_is_refused(value: Any) -> None:
    refused(envelope(account=value), "account")


@pytest.mark.parametrize("value", [-1, -(2**40), True, False, 1.0, "1", None, [1]])
def test_bad_seq_is_refused(value: Any) -> None:
    error = refused(envelope(seq=value), "seq")
    assert "non-negative integer" in error.message


@pytest.mark.parametrize("value", [None, 1, ["license.suspended"], {"t": 1}])
def test_non_string_type_is_refused(value: Any) -> None:
    refused(envelope(type=value), "type")


@pytest.mark.parametrize("value", [True, 1.0, "1", None])
def test_non_integer_schema_is_refused(value: Any) -> None:
    refused(envelope(schema=value), "schema")


@pytest.mark.parametrize(
    "value",
    [
        "2026-11-28T22:00:00Z",
        "2026-11-28T22:00:00.000000+00:00",
        "2026-11-28 22:00:00.000000Z",
        "2026-02-30T22:00:00.000000Z",
        "\u0662026-11-28T22:00:00.000000Z",
        "2026-11-28T22:00:00.000000Z\n",
        "",
        None,
        1764367200,
    ],
)
def test_bad_event_time_is_refused(value: Any) -> None:
    refused(envelope(time=value), "time")


@pytest.mark.parametrize(
    "actor",
    [
        None,
        "usr_1",
        ["usr_1", "admin", "api_key"],
        {"id": "usr_1", "role": "admin"},
        {"id": "usr_1", "role": "admin", "auth": "api_key", "ip": "10.0.0.1"},
        {"id": "", "role": "admin", "auth": "api_key"},
        {"id": "usr_1", "role": None, "auth": "api_key"},
        {"id": "usr_1", "role": "admin", "auth": 1},
    ],
)
def test_bad_actor_is_refused(actor: Any) -> None:
    refused(envelope(actor=actor), "actor")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("reason", ""),
        ("reason", "r" * 2001),
        ("reason", 1),
        ("reason", ["why"]),
        ("idempotency_key", ""),
        ("idempotency_key", "k" * 256),
        ("idempotency_key", 5),
    ],
)
def test_bad_reason_or_idempotency_key_is_refused(field: str, value: Any) -> None:
    refused(envelope(**{field: value}), field)


@pytest.mark.parametrize("data", [None, [], "serial", 1])
def test_data_that_is_not_an_object_is_refused(data: Any) -> None:
    refused(envelope(data=data), "data")


# ---------------------------------------------------------------- types and schema versions


@pytest.mark.parametrize("type_name", ["license.deleted", "", "License.Issued", "license"])
def test_unknown_event_type_is_refused_as_unknown(type_name: str) -> None:
    with pytest.raises(UnknownEventType) as info:
        event_from_json(envelope(type_name))
    assert info.value.field == "type"
    assert repr(type_name) in info.value.message


@pytest.mark.parametrize("schema", [0, 2, 99, -1])
def test_unknown_schema_version_is_refused_as_unknown(schema: int) -> None:
    with pytest.raises(UnknownEventType) as info:
        event_from_json(envelope("license.issued", schema=schema))
    assert info.value.field == "schema"
    assert str(schema) in info.value.message


def test_a_schema_1_ledger_restored_is_upcast_when_applied_and_never_rewritten() -> None:
    v1 = envelope("ledger.restored", schema=1)
    leaf = canonical_json(v1)
    event = event_from_json(orjson.loads(leaf))
    assert (event.schema, event.leaf()) == (1, leaf)  # stored as written
    assert upcast("ledger.restored", 1, event.data) == (
        2,
        {**VALID_DATA["ledger.restored"], "replaced": None},
    )
    v2 = envelope("ledger.restored", schema=2, data={**v1["data"], "replaced": 812})
    assert event_from_json(v2).data["replaced"] == 812
    with pytest.raises(MalformedEvent):  # schema 2 requires it
        event_from_json(envelope("ledger.restored", schema=2))
    with pytest.raises(MalformedEvent):  # and schema 1 does not know it
        event_from_json(envelope("ledger.restored", schema=1, data=v2["data"]))


SEALED = {"nonce": "AAECAwQFBgcICQoL", "ct": "c2VhbGVkIGJ5dGVzIGFuZCB0YWc="}
"""A schema-2 personal field: base64 nonce (12 bytes) and ciphertext with tag."""


def test_a_schema_2_customer_created_holds_sealed_fields_named_by_its_own_event() -> None:
    event_id = "evt_" + "0123456789abcdef" * 2
    data = {**VALID_DATA["customer.created"], "name": SEALED, "email": SEALED}
    v2 = envelope("customer.created", schema=2, data={**data, "sealed_in": event_id})
    assert event_from_json(v2).data["name"] == SEALED
    for sealed_in in (None, "evt_" + "f" * 32):  # sealed data must name this event
        with pytest.raises(MalformedEvent) as info:
            event_from_json({**v2, "data": {**data, "sealed_in": sealed_in}})
        assert info.value.field == "data.sealed_in"
    plain = {**VALID_DATA["customer.created"], "sealed_in": None}  # encryption disabled
    assert event_from_json(envelope("customer.created", schema=2, data=plain)).data == plain
    with pytest.raises(MalformedEvent):  # schema 1 knows no sealed fields
        event_from_json(envelope("customer.created", schema=1, data={**data}))


def test_a_schema_1_customer_created_is_upcast_with_nothing_sealed() -> None:
    data = VALID_DATA["customer.created"]
    assert upcast("customer.created", 1, data) == (2, {**data, "sealed_in": None})


def test_upcast_of_a_current_schema_is_the_identity() -> None:
    data = VALID_DATA["license.renewed"]
    assert upcast("license.renewed", 1, data) == (1, data)
    with pytest.raises(UnknownEventType):
        upcast("license.renewed", 2, data)
    with pytest.raises(UnknownEventType):
        upcast("license.nope", 1, data)


# ---------------------------------------------------------------- data schemas


@pytest.mark.parametrize("type_name", sorted(VALID_DATA))
def test_data_with_an_extra_field_is_refused(type_name: str) -> None:
    error = refused(with_data(type_name, note="hi"), "data.note")
    assert type_name in error.message


@pytest.mark.parametrize("type_name", sorted(VALID_DATA))
def test_data_missing_a_field_is_refused(type_name: str) -> None:
    for field in VALID_DATA[type_name]:
        obj = envelope(type_name)
        del obj["data"][field]
        refused(obj, f"data.{field}")


@pytest.mark.parametrize(
    ("type_name", "changes", "field"),
    [
        ("product.defined", {"product": "Acme"}, "data.product"),
        ("product.defined", {"product": ""}, "data.product"),
        ("product.defined", {"name": ""}, "data.name"),
        ("product.defined", {"name": "n" * 501}, "data.name"),
        ("product.defined", {"features": "sso"}, "data.features"),
        ("product.defined", {"features": ["SSO"]}, "data.features.0"),
        ("plan.published", {"version": 0}, "data.version"),
        ("plan.published", {"version": "1"}, "data.version"),
        ("plan.published", {"version": True}, "data.version"),
        ("plan.published", {"version": 1.0}, "data.version"),
        ("plan.published", {"activation": "per-seat"}, "data.activation"),
        ("plan.published", {"offline_token_ttl": None}, "data.offline_token_ttl"),
        ("plan.published", {"duration": "365 days"}, "data.duration"),
        ("plan.published", {"duration": "P0D"}, "data.duration"),
        ("plan.published", {"grace": "P1D\n"}, "data.grace"),
        ("plan.published", {"offline_token_ttl": "PT"}, "data.offline_token_ttl"),
        ("plan.published", {"core": ["feature:sso", "seats", "quota:gone"]}, "data.core"),
        ("plan.published", {"entitlements": {"seats": -1}}, "data.entitlements.seats"),
        ("plan.published", {"entitlements": {"seats": True}}, "data.entitlements.seats"),
        ("plan.published", {"entitlements": {"feature:sso": 1}}, "data.entitlements.feature:sso"),
        ("plan.published", {"entitlements": {"quota:api": False}}, "data.entitlements.quota:api"),
        ("customer.created", {"customer": "cus_" + "a" * 25}, "data.customer"),
        ("customer.created", {"customer": "cus_" + "A" * 26}, "data.customer"),
        ("customer.created", {"name": ""}, "data.name"),
        ("customer.created", {"email": 5}, "data.email"),
        ("license.issued", {"serial": "TNR-AAAAA-AAAAA-AAAAA"}, "data.serial"),
        ("license.issued", {"serial": "TNR-aaaaa-AAAAA-AAAAA-AAAAA"}, "data.serial"),
        ("license.issued", {"serial": "TNR-AAAA1-AAAAA-AAAAA-AAAAA"}, "data.serial"),
        ("license.issued", {"serial": "TNR-AAAAA-AAAAA-AAAAA-AAAAA\n"}, "data.serial"),
        ("license.issued", {"key_hash": "AB" * 32}, "data.key_hash"),
        ("license.issued", {"key_hash": "ab" * 31}, "data.key_hash"),
        ("license.issued", {"plan_version": 0}, "data.plan_version"),
        ("license.issued", {"order_ref": ""}, "data.order_ref"),
        ("license.issued", {"issued_at": "2026-11-28T22:00:00Z"}, "data.issued_at"),
        ("license.issued", {"expires_at": "2026-02-31T00:00:00.000000Z"}, "data.expires_at"),
        ("license.issued", {"expires_at": "\u0662026-11-28T22:00:00.000000Z"}, "data.expires_at"),
        ("license.renewed", {"expires_at": None}, "data.expires_at"),
        ("license.renewed", {"expires_at": 1764367200}, "data.expires_at"),
        ("license.suspended", {"serial": None}, "data.serial"),
        ("license.plan_changed", {"plan_version": "2"}, "data.plan_version"),
        ("license.entitlement_overridden", {"entitlement": "colour"}, "data.entitlement"),
        ("license.entitlement_overridden", {"value": -3}, "data.value"),
        ("license.entitlement_overridden", {"value": True}, "data.value"),
        ("license.entitlement_overridden", {"value": "25"}, "data.value"),
        ("license.transferred", {"customer": "cus_x"}, "data.customer"),
    ],
)
def test_bad_data_is_refused_naming_the_field(
    type_name: str, changes: dict[str, Any], field: str
) -> None:
    error = refused(with_data(type_name, **changes), field)
    named = (type_name, field.rsplit(".", 1)[-1], "entitlement")
    assert any(word in error.message for word in named), error.message


@pytest.mark.parametrize(
    ("type_name", "changes", "field"),
    [
        ("plan.published", {"entitlements": {"seats": 10.0}}, "data.entitlements.seats"),
        ("plan.published", {"entitlements": {"seats": 1.5}}, "data.entitlements.seats"),
        ("plan.published", {"version": 2.0}, "data.version"),
        ("license.issued", {"plan_version": 1.0}, "data.plan_version"),
        ("license.entitlement_overridden", {"value": 25.0}, "data.value"),
    ],
)
def test_float_values_are_refused(type_name: str, changes: dict[str, Any], field: str) -> None:
    with pytest.raises(MalformedEvent) as info:
        event_from_json(with_data(type_name, **changes))
    assert info.value.field == field


def test_entitlement_keys_outside_the_known_kinds_are_refused() -> None:
    with pytest.raises(MalformedEvent) as info:
        event_from_json(with_data("plan.published", entitlements={"colour": True}, core=[]))
    assert info.value.field == "data.entitlements.colour"


@pytest.mark.parametrize("type_name", sorted(REASON_REQUIRED))
@pytest.mark.parametrize("reason", [None])
def test_revoke_suspend_and_override_require_a_reason(type_name: str, reason: Any) -> None:
    error = refused(envelope(type_name, reason=reason), "reason")
    assert type_name in error.message
    assert "reason" in error.message


def test_reason_required_covers_revoke_suspend_override_and_erasure() -> None:
    assert {
        "license.revoked",
        "license.suspended",
        "license.entitlement_overridden",
        "customer.erased",
    } == REASON_REQUIRED


def test_validate_data_refuses_unknown_types_and_schemas() -> None:
    with pytest.raises(UnknownEventType):
        validate_data("nope", 1, {})
    with pytest.raises(UnknownEventType):
        validate_data("license.revoked", 3, {"serial": SERIAL})


# ---------------------------------------------------------------- arbitrary input

JSON_VALUES: st.SearchStrategy[Any] = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**53) + 1, 2**53 - 1), st.text(max_size=8)),
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=150, deadline=None)
@given(
    type_name=st.sampled_from(sorted(VALID_DATA)),
    key=st.sampled_from(
        ["id", "account", "seq", "type", "schema", "time", "actor", "reason", "data"]
    ),
    value=JSON_VALUES,
    data_key=st.text(max_size=12),
    data_value=JSON_VALUES,
)
def test_event_from_json_on_mutated_events_raises_only_malformed_event(
    type_name: str, key: str, value: Any, data_key: str, data_value: Any
) -> None:
    for obj in (
        envelope(type_name, **{key: value}),
        with_data(type_name, **{data_key: data_value}),
    ):
        with contextlib.suppress(MalformedEvent):
            event = event_from_json(obj)
            assert event.to_json() == obj
