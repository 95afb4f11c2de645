"""The projector: ``apply(view, event) -> changes``, pure and deterministic.

``apply`` reads only the rows it needs through ``view`` and returns the rows to
write; it never reads a clock, draws randomness or performs I/O, so replaying the
same events yields the same state on every machine. It also guards the state's
invariants: an event that the current state forbids raises ``Conflict`` and
nothing is written.

Statuses stored here are ``active``, ``suspended`` and ``revoked``; ``expired`` and
``in_grace`` depend on the clock and are derived at decision time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tenure.domain.events import CURRENT_SCHEMA, Event, upcast
from tenure.domain.state import Change, Key, Row, StateView
from tenure.errors import Conflict, MalformedEvent

Handler = Callable[[StateView, dict[str, Any]], list[Change]]


def apply(view: StateView, event: Event) -> list[Change]:
    """Return the projection changes ``event`` makes to the state seen through ``view``.

    Raises ``Conflict`` if the state forbids the event, ``UnknownEventType`` for a
    type this release does not know, and ``MalformedEvent`` for data that lacks
    what its type needs.
    """
    return apply_data(view, event.type, event.schema, event.data, event.seq)


def apply_data(
    view: StateView, type_name: str, schema: int, data: dict[str, Any], seq: int
) -> list[Change]:
    """``apply`` on an event's parts, for replay (no ``Event`` object per leaf)."""
    if CURRENT_SCHEMA.get(type_name) != schema:
        _, data = upcast(type_name, schema, data)
    try:
        return _HANDLERS[type_name](view, data)
    except (KeyError, TypeError) as exc:
        raise MalformedEvent(f"event {seq} ({type_name}) lacks {exc}") from exc


def _require(view: StateView, table: str, key: Key, what: str) -> Row:
    row = view.get(table, key)
    if row is None:
        raise Conflict(f"{what} {key[0] if len(key) == 1 else key} does not exist")
    return row


def _license(view: StateView, serial: str, *, allow_revoked: bool = False) -> Row:
    row = _require(view, "licenses", (serial,), "license")
    if row["status"] == "revoked" and not allow_revoked:
        raise Conflict(f"license {serial} is revoked")
    return row


def _updated(table: str, key: Key, row: Row, **fields: Any) -> list[Change]:
    return [(table, key, {**row, **fields})]


def _product_defined(view: StateView, data: dict[str, Any]) -> list[Change]:
    product = data["product"]
    features = sorted(set(data["features"]))
    current = view.get("products", (product,))
    if current is not None:
        dropped = sorted(set(current["features"]) - set(features))
        if dropped:
            raise Conflict(
                f"product {product} cannot drop features {dropped}: plans may grant them"
            )
    row = {"product": product, "name": data["name"], "features": features}
    return [("products", (product,), row)]


def _plan_published(view: StateView, data: dict[str, Any]) -> list[Change]:
    plan, version, product = data["plan"], data["version"], data["product"]
    product_row = _require(view, "products", (product,), "product")
    head = view.get("plans", (plan,))
    expected = 1 if head is None else head["latest_version"] + 1
    if version != expected:
        raise Conflict(f"plan {plan} must publish version {expected} next, not {version}")
    if head is not None and head["product"] != product:
        raise Conflict(f"plan {plan} belongs to product {head['product']}, not {product}")
    undeclared = sorted(
        key
        for key in data["entitlements"]
        if key.startswith("feature:") and key[8:] not in product_row["features"]
    )
    if undeclared:
        raise Conflict(f"plan {plan} grants features that {product} does not declare: {undeclared}")
    row = {
        "plan": plan,
        "version": version,
        "product": product,
        "entitlements": data["entitlements"],
        "core": sorted(set(data["core"])),
        "duration": data["duration"],
        "grace": data["grace"],
        "offline_token_ttl": data["offline_token_ttl"],
        "activation": data["activation"],
    }
    return [
        ("plans", (plan,), {"plan": plan, "product": product, "latest_version": version}),
        ("plan_versions", (plan, version), row),
    ]


def _customer_created(view: StateView, data: dict[str, Any]) -> list[Change]:
    customer = data["customer"]
    if view.get("customers", (customer,)) is not None:
        raise Conflict(f"customer {customer} already exists")
    sealed = {name: data[name] for name in ("name", "email") if isinstance(data[name], dict)}
    row = {
        "customer": customer,
        "name": None if "name" in sealed else data["name"],
        "email": None if "email" in sealed else data["email"],
        "external_id": data["external_id"],
    }
    changes: list[Change] = [("customers", (customer,), row)]
    if sealed:
        personal = {"customer": customer, "sealed_in": data["sealed_in"], "name": None}
        changes.append(("customer_sealed", (customer,), {**personal, "email": None, **sealed}))
    return changes


def _customer_erased(view: StateView, data: dict[str, Any]) -> list[Change]:
    """Erasure drops the personal fields from the projection (plaintext of schema-1
    customers included; their leaves keep it) and marks the customer erased."""
    customer = data["customer"]
    row = _require(view, "customers", (customer,), "customer")
    if view.get("customer_erasures", (customer,)) is not None:
        raise Conflict(f"customer {customer} is already erased")
    return [
        ("customers", (customer,), {**row, "name": None, "email": None}),
        ("customer_sealed", (customer,), None),
        ("customer_erasures", (customer,), {"customer": customer}),
    ]


def _plan_version(view: StateView, plan: str, version: int, product: str) -> Row:
    row = _require(view, "plan_versions", (plan, version), "plan version")
    if row["product"] != product:
        raise Conflict(f"plan {plan} is for product {row['product']}, not {product}")
    return row


def _license_issued(view: StateView, data: dict[str, Any]) -> list[Change]:
    serial = data["serial"]
    if view.get("licenses", (serial,)) is not None:
        raise Conflict(f"license {serial} already exists")
    _plan_version(view, data["plan"], data["plan_version"], data["product"])
    if view.get("retired_plans", (data["plan"],)) is not None:
        raise Conflict(f"plan {data['plan']} is retired: it issues no new licenses")
    _require(view, "customers", (data["customer"],), "customer")
    row = {
        "serial": serial,
        "product": data["product"],
        "customer": data["customer"],
        "plan": data["plan"],
        "plan_version": data["plan_version"],
        "order_ref": data["order_ref"],
        "key_hash": data["key_hash"],
        "status": "active",
        "issued_at": data["issued_at"],
        "expires_at": data["expires_at"],
        "overrides": {},
    }
    return [("licenses", (serial,), row)]


def _license_renewed(view: StateView, data: dict[str, Any]) -> list[Change]:
    row = _license(view, data["serial"])
    if row["expires_at"] is None:
        raise Conflict(f"license {data['serial']} never expires; it cannot be renewed")
    return _updated("licenses", (data["serial"],), row, expires_at=data["expires_at"])


def _license_suspended(view: StateView, data: dict[str, Any]) -> list[Change]:
    row = _license(view, data["serial"])
    if row["status"] == "suspended":
        raise Conflict(f"license {data['serial']} is already suspended")
    return _updated("licenses", (data["serial"],), row, status="suspended")


def _license_reinstated(view: StateView, data: dict[str, Any]) -> list[Change]:
    row = _license(view, data["serial"])
    if row["status"] != "suspended":
        raise Conflict(f"license {data['serial']} is not suspended")
    return _updated("licenses", (data["serial"],), row, status="active")


def _license_revoked(view: StateView, data: dict[str, Any]) -> list[Change]:
    row = _license(view, data["serial"])
    return _updated("licenses", (data["serial"],), row, status="revoked")


def _license_plan_changed(view: StateView, data: dict[str, Any]) -> list[Change]:
    row = _license(view, data["serial"])
    _plan_version(view, data["plan"], data["plan_version"], row["product"])
    if (row["plan"], row["plan_version"]) == (data["plan"], data["plan_version"]):
        raise Conflict(
            f"license {data['serial']} is already on {data['plan']} v{data['plan_version']}"
        )
    return _updated(
        "licenses", (data["serial"],), row, plan=data["plan"], plan_version=data["plan_version"]
    )


def _license_entitlement_overridden(view: StateView, data: dict[str, Any]) -> list[Change]:
    row = _license(view, data["serial"])
    key, value = data["entitlement"], data["value"]
    if key.startswith("feature:"):
        product = _require(view, "products", (row["product"],), "product")
        if key[8:] not in product["features"]:
            raise Conflict(f"product {row['product']} does not declare {key}")
    overrides = dict(row["overrides"])
    if value is None:
        if key not in overrides:
            raise Conflict(f"license {data['serial']} has no override for {key}")
        del overrides[key]
    else:
        overrides[key] = value
    return _updated("licenses", (data["serial"],), row, overrides=overrides)


def _license_transferred(view: StateView, data: dict[str, Any]) -> list[Change]:
    row = _license(view, data["serial"])
    _require(view, "customers", (data["customer"],), "customer")
    if row["customer"] == data["customer"]:
        raise Conflict(f"license {data['serial']} already belongs to {data['customer']}")
    return _updated("licenses", (data["serial"],), row, customer=data["customer"])


def _activation_created(view: StateView, data: dict[str, Any]) -> list[Change]:
    _license(view, data["serial"])
    activation, lease = data["activation"], data["lease_expires_at"]
    current = view.get("activations", (activation,))
    if current is not None and current["status"] == "active" and current["mode"] == "node-locked":
        raise Conflict(f"activation {activation} is already active")
    row = {
        "activation": activation,
        "serial": data["serial"],
        "fingerprint_hash": data["fingerprint_hash"],
        "mode": data["mode"],
        "status": "active",
        "lease_expires_at": lease,
    }
    return [("activations", (activation,), row), _seat(view, data["serial"], activation, lease)]


def _activation_renewed(view: StateView, data: dict[str, Any]) -> list[Change]:
    row = _active_activation(view, data)
    if row["mode"] != "floating":
        raise Conflict(f"activation {data['activation']} is node-locked: it has no lease")
    lease = data["lease_expires_at"]
    return [
        *_updated("activations", (data["activation"],), row, lease_expires_at=lease),
        _seat(view, data["serial"], data["activation"], lease),
    ]


def _activation_deactivated(view: StateView, data: dict[str, Any]) -> list[Change]:
    row = _active_activation(view, data)
    seats = view.get("license_seats", (data["serial"],))
    holders = {k: v for k, v in (seats or {}).get("holders", {}).items() if k != row["activation"]}
    seat_row = {"serial": data["serial"], "holders": holders} if holders else None
    return [
        *_updated("activations", (data["activation"],), row, status="deactivated"),
        ("license_seats", (data["serial"],), seat_row),
    ]


def _token_revoked(view: StateView, data: dict[str, Any]) -> list[Change]:
    _require(view, "licenses", (data["serial"],), "license")
    if view.get("revoked_tokens", (data["jti"],)) is not None:
        raise Conflict(f"token {data['jti']} is already revoked")
    return [("revoked_tokens", (data["jti"],), {"jti": data["jti"], "serial": data["serial"]})]


def _license_legacy_mapped(view: StateView, data: dict[str, Any]) -> list[Change]:
    _require(view, "licenses", (data["serial"],), "license")
    key = (data["system"], data["legacy_id"])
    current = view.get("legacy_ids", key)
    if current is not None:
        raise Conflict(
            f"legacy id {data['legacy_id']!r} of {data['system']} is already mapped "
            f"to {current['serial']}"
        )
    row = {k: data[k] for k in ("system", "legacy_id", "serial", "legacy_key_hash")}
    return [("legacy_ids", key, row)]


def _plan_retired(view: StateView, data: dict[str, Any]) -> list[Change]:
    head = _require(view, "plans", (data["plan"],), "plan")
    if view.get("retired_plans", (data["plan"],)) is not None:
        raise Conflict(f"plan {data['plan']} is already retired")
    row = {"plan": data["plan"], "product": head["product"]}
    return [("retired_plans", (data["plan"],), row)]


def _approval_requested(view: StateView, data: dict[str, Any]) -> list[Change]:
    approval = data["approval"]
    if view.get("approvals", (approval,)) is not None:
        raise Conflict(f"approval {approval} already exists")
    row = {
        **{k: data[k] for k in ("approval", "action", "target", "payload", "requested_by")},
        "expires_at": data["expires_at"],
        "status": "pending",
        "detail": None,
    }
    return [("approvals", (approval,), row)]


def _approval_step(before: str, after: str) -> Handler:
    """A handler moving an approval from status ``before`` to ``after``: each approval
    is decided once and executed once, whatever races to do it."""

    def handler(view: StateView, data: dict[str, Any]) -> list[Change]:
        approval = data["approval"]
        row = _require(view, "approvals", (approval,), "approval")
        if row["status"] != before:
            raise Conflict(f"approval {approval} is {row['status']}, not {before}")
        status = after if after != "executed" or data["outcome"] == "succeeded" else "failed"
        detail = data.get("detail") if after == "executed" else row["detail"]
        return _updated("approvals", (approval,), row, status=status, detail=detail)

    return handler


def _active_activation(view: StateView, data: dict[str, Any]) -> Row:
    row = _require(view, "activations", (data["activation"],), "activation")
    if row["serial"] != data["serial"]:
        raise Conflict(f"activation {data['activation']} belongs to license {row['serial']}")
    if row["status"] != "active":
        raise Conflict(f"activation {data['activation']} is not active")
    return row


def _seat(view: StateView, serial: str, activation: str, lease: str | None) -> Change:
    """The license's seat row with ``activation`` holding a seat until ``lease``."""
    seats = view.get("license_seats", (serial,))
    holders = {**(seats or {}).get("holders", {}), activation: lease}
    return ("license_seats", (serial,), {"serial": serial, "holders": holders})


_HANDLERS: dict[str, Handler] = {
    "product.defined": _product_defined,
    "plan.published": _plan_published,
    "customer.created": _customer_created,
    "customer.erased": _customer_erased,
    "license.issued": _license_issued,
    "license.renewed": _license_renewed,
    "license.suspended": _license_suspended,
    "license.reinstated": _license_reinstated,
    "license.revoked": _license_revoked,
    "license.plan_changed": _license_plan_changed,
    "license.entitlement_overridden": _license_entitlement_overridden,
    "license.transferred": _license_transferred,
    "activation.created": _activation_created,
    "activation.renewed": _activation_renewed,
    "activation.deactivated": _activation_deactivated,
    "token.revoked": _token_revoked,
    "ledger.restored": lambda view, data: [],  # a record of the restore; no state changes
    "ledger.epoch_started": lambda view, data: [],  # likewise
    "license.legacy_mapped": _license_legacy_mapped,
    "plan.retired": _plan_retired,
    "approval.requested": _approval_requested,
    "approval.approved": _approval_step("pending", "approved"),
    "approval.rejected": _approval_step("pending", "rejected"),
    "approval.expired": _approval_step("pending", "expired"),
    "approval.executed": _approval_step("approved", "executed"),
}
