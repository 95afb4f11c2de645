"""Commands: what a caller asks for, turned into event drafts against current state.

``decide(view, ctx)`` reads the state, computes what the events must say (new
expiry dates, next plan version, deterministic serials) and returns drafts plus the
result the caller sees. It may read ``ctx.now`` and draw ids from ``ctx``; the
projector that later applies the drafts may not. A command whose effect is already
in place returns no drafts and the existing result (for example issuing a license
whose deterministic serial exists on the same plan).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from tenure.canonical import canonical_json
from tenure.domain.fields import field_values
from tenure.domain.state import Row, StateView
from tenure.domain.timefmt import format_time, parse_duration, parse_time
from tenure.errors import Conflict, InvalidInput, NotFound


@dataclass(frozen=True)
class Draft:
    """An event to append: its type and data (the ledger fills in the envelope)."""

    type: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Decision:
    """Drafts to append (possibly none) and the result to return to the caller."""

    drafts: list[Draft]
    result: dict[str, Any]


@dataclass(frozen=True)
class Context:
    """What commands may use besides state: the time, fresh ids, license key hashes."""

    account: str
    now: datetime
    random_token: Callable[[], bytes]
    license_key_hash: Callable[[str], str]
    open_sealed: Callable[[Row], dict[str, str | None] | None] = lambda row: None
    """The plaintext personal fields of a ``customer_sealed`` row, None when its data
    key is gone (``tenure.service.personal``); by default nothing can be opened."""


def _b32(raw: bytes, length: int) -> str:
    return base64.b32encode(raw).decode().rstrip("=")[:length]


def license_serial(account: str, product: str, customer: str, order_ref: str) -> str:
    """The deterministic serial of a license: same inputs, same serial, everywhere."""
    digest = hashlib.sha256(
        canonical_json(["tenure.serial.v1", account, product, customer, order_ref])
    ).digest()
    text = _b32(digest, 20)
    return "TNR-" + "-".join(text[i : i + 5] for i in range(0, 20, 5))


def customer_id(account: str, external_id: str) -> str:
    """The customer id derived from an external id: retries find the same customer."""
    raw = hashlib.sha256(canonical_json(["tenure.customer.v1", account, external_id])).digest()
    return "cus_" + _b32(raw, 26).lower()


def _random_customer_id(ctx: Context) -> str:
    return "cus_" + _b32(ctx.random_token(), 26).lower()


class Command:
    """Base class: commands are frozen dataclasses with a ``name`` and ``decide``."""

    name: ClassVar[str]

    def request(self) -> dict[str, Any]:
        """The canonical content of the request, compared on idempotent retries."""
        return {"command": self.name, **dataclasses.asdict(self)}  # type: ignore[call-overload]

    def decide(self, view: StateView, ctx: Context) -> Decision:
        raise NotImplementedError


def require_row(view: StateView, table: str, key: str, noun: str, **context: Any) -> Row:
    """The row of ``table`` at ``key``; raises ``NotFound`` ("<noun> <key> not found",
    with ``context``) when there is none."""
    row = view.get(table, (key,))
    if row is None:
        raise NotFound(f"{noun} {key} not found", **context)
    return row


def _license_row(view: StateView, serial: str) -> Row:
    return require_row(view, "licenses", serial, "license")


def _plan_version(view: StateView, plan: str, version: int | None) -> Row:
    head = require_row(view, "plans", plan, "plan")
    number = head["latest_version"] if version is None else version
    row = view.get("plan_versions", (plan, number))
    if row is None:
        raise NotFound(f"plan {plan} has no version {number}")
    return row


def license_view(row: Row) -> dict[str, Any]:
    """The public fields of a license row (never its key hash)."""
    return {k: v for k, v in row.items() if k != "key_hash"}


@dataclass(frozen=True)
class DefineProduct(Command):
    name: ClassVar[str] = "define_product"
    product: str
    title: str
    features: list[str] = field(default_factory=list)

    def decide(self, view: StateView, ctx: Context) -> Decision:
        current = view.get("products", (self.product,))
        wanted = {
            "product": self.product,
            "name": self.title,
            "features": sorted(set(self.features)),
        }
        if current == wanted:
            return Decision([], {**wanted, "changed": False})
        data = {"product": self.product, "name": self.title, "features": wanted["features"]}
        return Decision([Draft("product.defined", data)], {**wanted, "changed": True})


@dataclass(frozen=True)
class PublishPlan(Command):
    """Publish a plan version; a definition equal to the latest version is a no-op."""

    name: ClassVar[str] = "publish_plan"
    plan: str
    product: str
    entitlements: dict[str, bool | int]
    core: list[str] = field(default_factory=list)
    duration: str | None = "P365D"
    grace: str | None = "P14D"
    offline_token_ttl: str = "PT24H"  # noqa: S105 - a duration, not a secret
    activation: str = "floating"

    def definition(self) -> dict[str, Any]:
        """The fields a published plan version holds, spelled as the projection does."""
        return {
            "product": self.product,
            "entitlements": dict(self.entitlements),
            "core": sorted(set(self.core)),
            "duration": self.duration,
            "grace": self.grace,
            "offline_token_ttl": self.offline_token_ttl,
            "activation": self.activation,
        }

    def decide(self, view: StateView, ctx: Context) -> Decision:
        head = view.get("plans", (self.plan,))
        definition = self.definition()
        if head is not None:
            latest = _plan_version(view, self.plan, None)
            if {k: latest[k] for k in definition} == definition:
                return Decision(
                    [], {"plan": self.plan, "version": latest["version"], "changed": False}
                )
        version = 1 if head is None else head["latest_version"] + 1
        data = {"plan": self.plan, "version": version, **definition}
        return Decision(
            [Draft("plan.published", data)],
            {"plan": self.plan, "version": version, "changed": True},
        )


@dataclass(frozen=True)
class CreateCustomer(Command):
    name: ClassVar[str] = "create_customer"
    display_name: str | None = None
    email: str | None = None
    external_id: str | None = None

    def decide(self, view: StateView, ctx: Context) -> Decision:
        customer = (
            customer_id(ctx.account, self.external_id)
            if self.external_id is not None
            else _random_customer_id(ctx)
        )
        existing = view.get("customers", (customer,))
        if existing is not None:
            if view.get("customer_erasures", (customer,)) is not None:
                raise Conflict(f"the customer with external id {self.external_id!r} was erased")
            if _customer_details(view, ctx, existing) != (self.display_name, self.email):
                raise Conflict(f"customer with external id {self.external_id!r} already exists")
            return Decision([], {"customer": customer, "created": False})
        data = {
            "customer": customer,
            "name": self.display_name,
            "email": self.email,
            "external_id": self.external_id,
            "sealed_in": None,  # the writer seals the personal fields (schema 2)
        }
        return Decision([Draft("customer.created", data)], {"customer": customer, "created": True})


def _customer_details(view: StateView, ctx: Context, row: Row) -> tuple[Any, Any] | None:
    """Plaintext (name, email) of a customer, None if its data key is gone."""
    sealed = view.get("customer_sealed", (row["customer"],))
    opened = ctx.open_sealed(sealed) if sealed is not None else {}
    if opened is None:
        return None
    return (opened.get("name", row["name"]), opened.get("email", row["email"]))


@dataclass(frozen=True)
class EraseCustomer(Command):
    """Record the erasure of a customer's personal data (its data key is destroyed
    by ``tenure.service.handlers.licensing.erase_customer``). Raises ``NotFound`` for an
    unknown customer; an erased one is a no-op with ``"already": true``."""

    name: ClassVar[str] = "erase_customer"
    customer: str

    def decide(self, view: StateView, ctx: Context) -> Decision:
        require_row(view, "customers", self.customer, "customer", field="customer")
        result = {"customer": self.customer, "erased": True}
        if view.get("customer_erasures", (self.customer,)) is not None:
            return Decision([], {**result, "already": True})
        data = {"customer": self.customer}
        return Decision([Draft("customer.erased", data)], {**result, "already": False})


@dataclass(frozen=True)
class IssueLicense(Command):
    """Issue a license; the serial is derived from product, customer and order_ref."""

    name: ClassVar[str] = "issue_license"
    product: str
    plan: str
    customer: str
    order_ref: str
    plan_version: int | None = None

    def decide(self, view: StateView, ctx: Context) -> Decision:
        serial = license_serial(ctx.account, self.product, self.customer, self.order_ref)
        version = _plan_version(view, self.plan, self.plan_version)
        existing = view.get("licenses", (serial,))
        if existing is not None:
            if existing["plan"] != self.plan:
                raise Conflict(
                    f"order {self.order_ref!r} already has license {serial} on another plan"
                )
            return Decision([], {**license_view(existing), "created": False})
        if version["product"] != self.product:
            raise InvalidInput(f"plan {self.plan} is not a plan of {self.product}", field="plan")
        duration = version["duration"]
        expires = format_time(parse_duration(duration).after(ctx.now)) if duration else None
        data = {
            "serial": serial,
            "product": self.product,
            "plan": self.plan,
            "plan_version": version["version"],
            "customer": self.customer,
            "order_ref": self.order_ref,
            "key_hash": ctx.license_key_hash(serial),
            "issued_at": format_time(ctx.now),
            "expires_at": expires,
        }
        result = {k: v for k, v in data.items() if k != "key_hash"}
        return Decision(
            [Draft("license.issued", data)], {**result, "status": "active", "created": True}
        )


@dataclass(frozen=True)
class RenewLicense(Command):
    """Extend a license by ``duration`` (default: its plan's) from expiry or now."""

    name: ClassVar[str] = "renew_license"
    serial: str
    duration: str | None = None

    def decide(self, view: StateView, ctx: Context) -> Decision:
        row = _license_row(view, self.serial)
        if row["expires_at"] is None:
            raise Conflict(f"license {self.serial} never expires; it cannot be renewed")
        span = self.duration or _plan_version(view, row["plan"], row["plan_version"])["duration"]
        if span is None:
            raise InvalidInput("the plan has no duration; give one", field="duration")
        start = max(parse_time(row["expires_at"]), ctx.now)
        expires = format_time(parse_duration(span).after(start))
        data = {"serial": self.serial, "expires_at": expires}
        return Decision([Draft("license.renewed", data)], data)


@dataclass(frozen=True)
class _StatusChange(Command):
    serial: str
    event_type: ClassVar[str]
    new_status: ClassVar[str]

    def decide(self, view: StateView, ctx: Context) -> Decision:
        _license_row(view, self.serial)
        result = {"serial": self.serial, "status": self.new_status}
        return Decision([Draft(self.event_type, {"serial": self.serial})], result)


@dataclass(frozen=True)
class SuspendLicense(_StatusChange):
    name: ClassVar[str] = "suspend_license"
    event_type: ClassVar[str] = "license.suspended"
    new_status: ClassVar[str] = "suspended"


@dataclass(frozen=True)
class ReinstateLicense(_StatusChange):
    name: ClassVar[str] = "reinstate_license"
    event_type: ClassVar[str] = "license.reinstated"
    new_status: ClassVar[str] = "active"


@dataclass(frozen=True)
class RevokeLicense(_StatusChange):
    name: ClassVar[str] = "revoke_license"
    event_type: ClassVar[str] = "license.revoked"
    new_status: ClassVar[str] = "revoked"


@dataclass(frozen=True)
class ChangePlan(Command):
    name: ClassVar[str] = "change_plan"
    serial: str
    plan: str
    plan_version: int | None = None

    def decide(self, view: StateView, ctx: Context) -> Decision:
        _license_row(view, self.serial)
        version = _plan_version(view, self.plan, self.plan_version)
        data = {"serial": self.serial, "plan": self.plan, "plan_version": version["version"]}
        return Decision([Draft("license.plan_changed", data)], data)


@dataclass(frozen=True)
class OverrideEntitlement(Command):
    """Set (or with ``value=None`` remove) a per-license entitlement override."""

    name: ClassVar[str] = "override_entitlement"
    serial: str
    entitlement: str
    value: bool | int | None

    def decide(self, view: StateView, ctx: Context) -> Decision:
        _license_row(view, self.serial)
        data = field_values(self)
        return Decision([Draft("license.entitlement_overridden", data)], data)


@dataclass(frozen=True)
class TransferLicense(Command):
    name: ClassVar[str] = "transfer_license"
    serial: str
    customer: str

    def decide(self, view: StateView, ctx: Context) -> Decision:
        _license_row(view, self.serial)
        data = field_values(self)
        return Decision([Draft("license.transferred", data)], data)


@dataclass(frozen=True)
class RetirePlan(Command):
    """Retire a plan: no new licenses on it; existing ones keep working. Raises
    ``NotFound`` for an unknown plan, ``Conflict`` for one already retired."""

    name: ClassVar[str] = "retire_plan"
    plan: str

    def decide(self, view: StateView, ctx: Context) -> Decision:
        require_row(view, "plans", self.plan, "plan")
        if view.get("retired_plans", (self.plan,)) is not None:
            raise Conflict(f"plan {self.plan} is already retired")
        data = {"plan": self.plan}
        return Decision([Draft("plan.retired", data)], {**data, "retired": True})


@dataclass(frozen=True)
class RecordRestore(Command):
    """Record, as the first event after a restore, what the restore proved."""

    name: ClassVar[str] = "record_restore"
    site: str
    size: int
    root: str
    digest: str
    snapshot: int | None
    replaced: int | None = None

    def decide(self, view: StateView, ctx: Context) -> Decision:
        data = field_values(self)
        return Decision([Draft("ledger.restored", data)], data)


@dataclass(frozen=True)
class StartEpoch(Command):
    """Record, as the first event of a new epoch, the previous log's final checkpoint
    and what of it was kept (see ``tenure.durability.epochs``)."""

    name: ClassVar[str] = "start_epoch"
    epoch: int
    previous_checkpoint: str
    kept: int
    lost: int
    site: str
    digest: str
    snapshot: int | None

    def decide(self, view: StateView, ctx: Context) -> Decision:
        data = field_values(self)
        return Decision([Draft("ledger.epoch_started", data)], data)


def legacy_customer_id(account: str, email: str) -> str:
    """The customer id of an imported customer known only by ``email`` (case-folded):
    every row of the same customer, in any import, finds the same customer."""
    raw = hashlib.sha256(
        canonical_json(["tenure.customer.email.v1", account, email.casefold()])
    ).digest()
    return "cus_" + _b32(raw, 26).lower()


@dataclass(frozen=True)
class ImportLegacyLicense(Command):
    """One license of another licensing system, as one atomic group of events: its
    customer (if new), ``license.issued``, overrides, ``license.legacy_mapped`` and a
    suspension or revocation. Its serial derives from the order ref
    ``legacy:<system>:<legacy_id>``; a legacy id already mapped to that serial is a
    no-op, one mapped to another serial a ``Conflict``. ``expires_at`` None means the
    plan's duration from ``starts_at`` (or now); ``perpetual`` means no expiry."""

    name: ClassVar[str] = "import_legacy_license"
    system: str
    legacy_id: str
    legacy_key_hash: str
    product: str
    plan: str
    customer_external_id: str | None = None
    customer_name: str | None = None
    customer_email: str | None = None
    plan_version: int | None = None
    starts_at: str | None = None
    expires_at: str | None = None
    perpetual: bool = False
    status: str = "active"
    overrides: dict[str, bool | int] = field(default_factory=dict)

    def _customer(self, view: StateView, ctx: Context) -> tuple[str, list[Draft]]:
        if self.customer_external_id is not None:
            customer = customer_id(ctx.account, self.customer_external_id)
        elif self.customer_email is not None:
            customer = legacy_customer_id(ctx.account, self.customer_email)
        else:
            raise InvalidInput("a customer id or email is required", field="customer_id")
        if view.get("customers", (customer,)) is not None:
            return customer, []
        data = {
            "customer": customer,
            "name": self.customer_name,
            "email": self.customer_email,
            "external_id": self.customer_external_id,
            "sealed_in": None,  # the writer seals the personal fields (schema 2)
        }
        return customer, [Draft("customer.created", data)]

    def _expiry(self, version: Row, issued: datetime) -> str | None:
        if self.perpetual:
            return None
        if self.expires_at is not None:
            return self.expires_at
        duration = version["duration"]
        return format_time(parse_duration(duration).after(issued)) if duration else None

    def decide(self, view: StateView, ctx: Context) -> Decision:
        customer, drafts = self._customer(view, ctx)
        serial = license_serial(
            ctx.account, self.product, customer, f"legacy:{self.system}:{self.legacy_id}"
        )
        result = {"serial": serial, "system": self.system, "legacy_id": self.legacy_id}
        mapped = view.get("legacy_ids", (self.system, self.legacy_id))
        if mapped is not None:
            if mapped["serial"] != serial:
                raise Conflict(f"legacy id {self.legacy_id!r} was imported with other data")
            return Decision([], {**result, "created": False})
        version = _plan_version(view, self.plan, self.plan_version)
        if version["product"] != self.product:
            raise InvalidInput(f"plan {self.plan} is not a plan of {self.product}", field="plan")
        issued = parse_time(self.starts_at, "starts_at") if self.starts_at else ctx.now
        issue = {
            "serial": serial,
            "product": self.product,
            "plan": self.plan,
            "plan_version": version["version"],
            "customer": customer,
            "order_ref": f"legacy:{self.system}:{self.legacy_id}",
            "key_hash": ctx.license_key_hash(serial),
            "issued_at": format_time(issued),
            "expires_at": self._expiry(version, issued),
        }
        drafts.append(Draft("license.issued", issue))
        for key, value in sorted(self.overrides.items()):
            data = {"serial": serial, "entitlement": key, "value": value}
            drafts.append(Draft("license.entitlement_overridden", data))
        mapping = {
            "serial": serial,
            "system": self.system,
            "legacy_id": self.legacy_id,
            "legacy_key_hash": self.legacy_key_hash,
        }
        drafts.append(Draft("license.legacy_mapped", mapping))
        if self.status in ("suspended", "revoked"):
            drafts.append(Draft(f"license.{self.status}", {"serial": serial}))
        return Decision(drafts, {**result, "customer": customer, "created": True})
