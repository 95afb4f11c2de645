"""The event envelope, the event types, their data schemas and upcasters.

Every event is ``{"id", "account", "seq", "type", "schema", "time", "actor",
"reason", "idempotency_key", "data"}``; its leaf bytes are the RFC 8785 encoding of
that object. Each type has numbered data schemas. Old events are never rewritten:
``upcast`` lifts old data one schema step at a time when it is applied.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)
from typing_extensions import TypedDict

from tenure.canonical import canonical_json
from tenure.domain.answers import NonNegative, closed
from tenure.domain.timefmt import is_time, parse_duration
from tenure.domain.values import (
    ActivationId,
    ApprovalId,
    Code,
    CustomerId,
    EntitlementKey,
    EntitlementValue,
    EventId,
    Hex64,
    PrincipalId,
    Serial,
    Text,
    Time,
    TokenId,
)
from tenure.errors import InvalidInput, MalformedEvent, UnknownEventType

REASON_REQUIRED = frozenset(
    {"license.suspended", "license.revoked", "license.entitlement_overridden", "customer.erased"}
)


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    PERSONAL: ClassVar[frozenset[str]] = frozenset()
    """Fields holding personal data: sealed per customer when written (see
    ``tenure.service.personal``), never logged or echoed in errors."""


class ProductDefined(_Data):
    product: Code
    name: Text
    features: list[Code]


class PlanPublished(_Data):
    plan: Code
    product: Code
    version: int = Field(ge=1)
    entitlements: dict[EntitlementKey, EntitlementValue]
    core: list[EntitlementKey]
    duration: str | None
    grace: str | None
    offline_token_ttl: str
    activation: Literal["floating", "node-locked"]


class CustomerCreatedV1(_Data):
    """Schema 1 of ``customer.created`` (release 0.1.0): name and e-mail in plaintext.
    Such leaves are never rewritten; see docs/personal-data.md."""

    PERSONAL: ClassVar[frozenset[str]] = frozenset({"name", "email"})
    customer: CustomerId
    name: Text | None
    email: Text | None
    external_id: Text | None


class Sealed(_Data):
    """A personal field encrypted with its customer's data key (AES-256-GCM, see
    ``tenure.crypto.datakeys``): base64 nonce and ciphertext with tag."""

    nonce: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9+/]{16}$")]
    ct: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9+/]+={0,2}$", max_length=4096)]


class CustomerCreated(_Data):
    """Schema 2: each ``PERSONAL`` field is ``Sealed`` (or plaintext when encryption
    is disabled, or upcast from schema 1); ``sealed_in`` is the id of this event, the
    associated data of its ciphertexts, None when nothing is sealed."""

    PERSONAL: ClassVar[frozenset[str]] = frozenset({"name", "email"})
    customer: CustomerId
    name: Sealed | Text | None
    email: Sealed | Text | None
    external_id: Text | None
    sealed_in: EventId | None


def _customer_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "sealed_in": None}


class CustomerErased(_Data):
    """The customer's data key was destroyed (crypto-shredding); the reason is the
    envelope's."""

    customer: CustomerId


class LicenseIssued(_Data):
    serial: Serial
    product: Code
    plan: Code
    plan_version: int = Field(ge=1)
    customer: CustomerId
    order_ref: Text
    key_hash: Hex64
    issued_at: Time
    expires_at: Time | None


class LicenseRenewed(_Data):
    serial: Serial
    expires_at: Time


class LicenseRef(_Data):
    serial: Serial


class LicensePlanChanged(_Data):
    serial: Serial
    plan: Code
    plan_version: int = Field(ge=1)


class LicenseEntitlementOverridden(_Data):
    serial: Serial
    entitlement: EntitlementKey
    value: EntitlementValue | None


class LicenseTransferred(_Data):
    serial: Serial
    customer: CustomerId


class ActivationCreated(_Data):
    activation: ActivationId
    serial: Serial
    fingerprint_hash: Hex64
    mode: Literal["floating", "node-locked"]
    lease_expires_at: Time | None


class ActivationRenewed(_Data):
    activation: ActivationId
    serial: Serial
    lease_expires_at: Time


class ActivationRef(_Data):
    activation: ActivationId
    serial: Serial


class TokenRevoked(_Data):
    serial: Serial
    jti: TokenId


class LicenseLegacyMapped(_Data):
    """A license imported from another licensing system: its id there, and the
    SHA-256 (domain-separated, see ``legacy_key_hash``) of its key there."""

    serial: Serial
    system: Code
    legacy_id: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    legacy_key_hash: Hex64


class LedgerRestoredV1(_Data):
    """Schema 1 of ``ledger.restored`` (release 0.1.0): a restore into an empty
    database made this ledger live again: where from, and what it proved."""

    site: Annotated[str, StringConstraints(min_length=1, max_length=500)]
    size: int = Field(ge=0)
    root: Hex64
    digest: Hex64
    snapshot: int | None = Field(ge=0)


class LedgerRestored(LedgerRestoredV1):
    """Schema 2: also ``replaced``, the size of the ledger a restore onto a live store
    rewrote (``tenure restore --replace``, ``POST /v1/restores``), None for a restore
    into an empty database. Schema 1 events are upcast with ``replaced`` None."""

    replaced: int | None = Field(ge=0)


def _restored_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "replaced": None}


class LedgerEpochStarted(_Data):
    """The first event of a new epoch (``tenure restore --new-epoch``): the events
    before it are what a site still held of the previous log, whose final signed
    checkpoint it quotes; ``lost`` events that checkpoint covered are gone."""

    epoch: int = Field(ge=2)
    previous_checkpoint: Annotated[str, StringConstraints(min_length=1, max_length=2000)]
    kept: int = Field(ge=0)
    lost: int = Field(ge=1)
    site: Annotated[str, StringConstraints(min_length=1, max_length=500)]
    digest: Hex64
    snapshot: int | None = Field(ge=0)


MAX_APPROVAL_PAYLOAD = 64 * 1024
"""Canonical bytes an approval's payload may take (a catalog is the largest)."""


def _bounded_payload(payload: dict[str, Any]) -> dict[str, Any]:
    if len(canonical_json(payload)) > MAX_APPROVAL_PAYLOAD:
        raise ValueError(f"must be at most {MAX_APPROVAL_PAYLOAD} bytes of canonical JSON")
    return payload


class ApprovalRequested(_Data):
    """A dangerous action asked for and held until a second principal approves it
    (``tenure.domain.approvals``): ``payload`` holds what executing it needs, never
    secrets or personal data."""

    approval: ApprovalId
    action: Code
    target: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    payload: Annotated[dict[str, Any], AfterValidator(_bounded_payload)]
    requested_by: PrincipalId
    expires_at: Time


class ApprovalRef(_Data):
    """``approval.approved`` / ``rejected`` / ``expired``: who and why are the
    envelope's actor and reason."""

    approval: ApprovalId


class ApprovalExecuted(_Data):
    """What executing an approved action came to (``failed``: ``detail`` says why)."""

    approval: ApprovalId
    outcome: Literal["succeeded", "failed"]
    detail: Annotated[str, StringConstraints(min_length=1, max_length=500)] | None


class PlanRetired(_Data):
    """A plan that issues no new licenses; its licenses keep their plan version."""

    plan: Code


Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class EventType:
    """A known event type: its current schema version, models and upcasters.

    ``models[v]`` validates data of schema ``v``; ``upcasters[v]`` turns data of
    schema ``v`` into schema ``v + 1``.
    """

    name: str
    models: dict[int, type[_Data]]
    upcasters: dict[int, Upcaster]
    subject: str

    @property
    def current_schema(self) -> int:
        return max(self.models)


def _type(name: str, model: type[_Data], subject: str) -> EventType:
    return EventType(name, {1: model}, {}, subject)


EVENT_TYPES: dict[str, EventType] = {
    t.name: t
    for t in (
        _type("product.defined", ProductDefined, "product"),
        _type("plan.published", PlanPublished, "plan"),
        EventType(
            "customer.created",
            {1: CustomerCreatedV1, 2: CustomerCreated},
            {1: _customer_v1_to_v2},
            "customer",
        ),
        _type("customer.erased", CustomerErased, "customer"),
        _type("license.issued", LicenseIssued, "serial"),
        _type("license.renewed", LicenseRenewed, "serial"),
        _type("license.suspended", LicenseRef, "serial"),
        _type("license.reinstated", LicenseRef, "serial"),
        _type("license.revoked", LicenseRef, "serial"),
        _type("license.plan_changed", LicensePlanChanged, "serial"),
        _type("license.entitlement_overridden", LicenseEntitlementOverridden, "serial"),
        _type("license.transferred", LicenseTransferred, "serial"),
        _type("activation.created", ActivationCreated, "serial"),
        _type("activation.renewed", ActivationRenewed, "serial"),
        _type("activation.deactivated", ActivationRef, "serial"),
        _type("token.revoked", TokenRevoked, "serial"),
        EventType(
            "ledger.restored",
            {1: LedgerRestoredV1, 2: LedgerRestored},
            {1: _restored_v1_to_v2},
            "site",
        ),
        _type("ledger.epoch_started", LedgerEpochStarted, "site"),
        _type("license.legacy_mapped", LicenseLegacyMapped, "serial"),
        _type("plan.retired", PlanRetired, "plan"),
        _type("approval.requested", ApprovalRequested, "approval"),
        _type("approval.approved", ApprovalRef, "approval"),
        _type("approval.rejected", ApprovalRef, "approval"),
        _type("approval.expired", ApprovalRef, "approval"),
        _type("approval.executed", ApprovalExecuted, "approval"),
    )
}


CURRENT_SCHEMA: dict[str, int] = {name: t.current_schema for name, t in EVENT_TYPES.items()}
"""The schema version this release writes, per event type."""


@dataclass(frozen=True, slots=True)
class Actor:
    """Who caused an event: principal id, role, and how they authenticated."""

    id: str
    role: str
    auth: str

    def to_json(self) -> ActorJson:
        return {"id": self.id, "role": self.role, "auth": self.auth}


SYSTEM_ACTOR = Actor("system", "system", "internal")


@closed
class ActorJson(TypedDict):
    id: str
    role: str
    auth: str


@closed
class EventJson(TypedDict):
    """A ledger event envelope (``Event.to_json``); its leaf is this, RFC 8785 encoded."""

    id: EventId
    account: str
    seq: NonNegative
    type: str
    schema: int
    time: Time
    actor: ActorJson
    reason: str | None
    idempotency_key: str | None
    data: Annotated[
        dict[str, Any], Field(description="the event type's data, by its schema version")
    ]


@dataclass(frozen=True, slots=True)
class Event:
    """One ledger event. ``data`` is already upcast to the current schema when the
    event came through ``event_from_json``."""

    id: str
    account: str
    seq: int
    type: str
    schema: int
    time: str
    actor: Actor
    reason: str | None
    idempotency_key: str | None
    data: dict[str, Any]

    def to_json(self) -> EventJson:
        return {
            "id": self.id,
            "account": self.account,
            "seq": self.seq,
            "type": self.type,
            "schema": self.schema,
            "time": self.time,
            "actor": self.actor.to_json(),
            "reason": self.reason,
            "idempotency_key": self.idempotency_key,
            "data": self.data,
        }

    def leaf(self) -> bytes:
        """The event's leaf bytes: its RFC 8785 canonical JSON."""
        return canonical_json(self.to_json())

    @property
    def subject(self) -> str | None:
        """The key of the object the event is about (serial, customer, plan …)."""
        known = EVENT_TYPES.get(self.type)
        value = self.data.get(known.subject) if known else None
        return value if isinstance(value, str) else None


_ENVELOPE_KEYS = frozenset(
    {"id", "account", "seq", "type", "schema", "time", "actor", "reason", "idempotency_key", "data"}
)
_EVENT_ID = re.compile(r"^evt_[0-9a-f]{32}$")
_ACCOUNT = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def upcast(type_name: str, schema: int, data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Lift ``data`` of ``type_name`` from ``schema`` to the current schema."""
    known = EVENT_TYPES.get(type_name)
    if known is None:
        raise UnknownEventType(f"unknown event type {type_name!r}", field="type")
    if schema not in known.models:
        raise UnknownEventType(f"{type_name} has no schema version {schema}", field="schema")
    while schema < known.current_schema:
        data = known.upcasters[schema](data)
        schema += 1
    return schema, data


def event_from_json(obj: Any) -> Event:
    """Build an ``Event`` from a parsed leaf, checking the envelope and the data schema.

    Raises ``MalformedEvent`` (or ``UnknownEventType``) naming the field at fault.
    """
    if not isinstance(obj, dict) or set(obj) != _ENVELOPE_KEYS:
        keys = sorted(map(str, obj)) if isinstance(obj, dict) else type(obj).__name__
        odd = sorted(map(str, set(obj) ^ _ENVELOPE_KEYS)) if isinstance(obj, dict) else []
        raise MalformedEvent(
            f"event envelope must have exactly {sorted(_ENVELOPE_KEYS)}, got {keys}",
            field=odd[0] if odd else None,
        )
    _check_envelope(obj)
    type_name, schema, data = obj["type"], obj["schema"], obj["data"]
    validate_data(type_name, schema, data)
    _check_sealed_in(obj["id"], personal_fields(type_name, schema), data)
    if type_name in REASON_REQUIRED and not obj["reason"]:
        raise MalformedEvent(f"{type_name} requires a reason", field="reason")
    actor = obj["actor"]
    return Event(
        obj["id"],
        obj["account"],
        obj["seq"],
        type_name,
        schema,
        obj["time"],
        Actor(actor["id"], actor["role"], actor["auth"]),
        obj["reason"],
        obj["idempotency_key"],
        data,
    )


def personal_fields(type_name: str, schema: int) -> frozenset[str]:
    """The ``PERSONAL`` fields of ``type_name`` data of ``schema`` (none if unknown)."""
    known = EVENT_TYPES.get(type_name)
    model = known.models.get(schema) if known else None
    return model.PERSONAL if model else frozenset()


def _check_sealed_in(event_id: str, personal: frozenset[str], data: dict[str, Any]) -> None:
    """Sealed fields name the event whose id is their associated data: this one."""
    sealed = any(isinstance(data.get(name), dict) for name in personal)
    if data.get("sealed_in", event_id if sealed else None) != (event_id if sealed else None):
        raise MalformedEvent(
            "data.sealed_in must be the event's own id when (and only when) a field is sealed",
            field="data.sealed_in",
        )


def _check_envelope(obj: dict[str, Any]) -> None:
    def bad(field: str, what: str) -> MalformedEvent:
        return MalformedEvent(f"event {field} {what}", field=field)

    if not isinstance(obj["id"], str) or not _EVENT_ID.fullmatch(obj["id"]):
        raise bad("id", "must be evt_ followed by 32 hex digits")
    if not isinstance(obj["account"], str) or not _ACCOUNT.fullmatch(obj["account"]):
        raise bad("account", "must be a lowercase account name")
    if type(obj["seq"]) is not int or obj["seq"] < 0:
        raise bad("seq", "must be a non-negative integer")
    if not isinstance(obj["type"], str):
        raise bad("type", "must be a string")
    if type(obj["schema"]) is not int:
        raise bad("schema", "must be an integer")
    if not isinstance(obj["time"], str) or not is_time(obj["time"]):
        raise bad("time", "must be RFC 3339 UTC with microseconds")
    actor = obj["actor"]
    if (
        not isinstance(actor, dict)
        or set(actor) != {"id", "role", "auth"}
        or not all(isinstance(v, str) and v for v in actor.values())
    ):
        raise bad("actor", "must be {id, role, auth} strings")
    for field, limit in (("reason", 2000), ("idempotency_key", 255)):
        value = obj[field]
        if value is not None and (not isinstance(value, str) or not 0 < len(value) <= limit):
            raise bad(field, f"must be null or a non-empty string of at most {limit} characters")
    if not isinstance(obj["data"], dict):
        raise bad("data", "must be an object")


def error_path(data: Any, loc: tuple[int | str, ...]) -> list[int | str]:
    """The part of a pydantic error location that is a path in ``data``.

    Drops pydantic's own tags (``bool`` for a union member, ``[key]`` for a dict key)
    so that ``field`` names a member of the event, such as ``data.value``.
    """
    path: list[int | str] = []
    for part in loc:
        if isinstance(data, dict) and isinstance(part, str):
            path.append(part)
            if part not in data:
                break
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            path.append(part)
            data = data[part]
        else:
            break
    return path or list(loc)


def validate_data(type_name: str, schema: int, data: dict[str, Any]) -> None:
    """Check ``data`` against the schema of ``type_name`` version ``schema``."""
    known = EVENT_TYPES.get(type_name)
    if known is None:
        raise UnknownEventType(f"unknown event type {type_name!r}", field="type")
    model = known.models.get(schema)
    if model is None:
        raise UnknownEventType(f"{type_name} has no schema version {schema}", field="schema")
    try:
        model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in error_path(data, first["loc"]))
        raise MalformedEvent(
            f"{type_name} data.{where}: {first['msg']}", field=f"data.{where}"
        ) from None
    if type_name == "plan.published":
        _check_plan(data)
    elif type_name == "license.entitlement_overridden" and data["value"] is not None:
        check_entitlement_value(data["entitlement"], data["value"], field="data.value")


def check_entitlement_value(key: str, value: Any, field: str) -> None:
    """``seats`` and ``quota:*`` take non-negative integers; ``feature:*`` and
    ``module:*`` take booleans. Raises ``MalformedEvent`` otherwise."""
    numeric = key == "seats" or key.startswith("quota:")
    if numeric != (type(value) is int) or (numeric and value < 0):
        kind = "a non-negative integer" if numeric else "true or false"
        raise MalformedEvent(f"entitlement {key} must be {kind}", field=field)


def _check_plan(data: dict[str, Any]) -> None:
    for field in ("duration", "grace", "offline_token_ttl"):
        if data[field] is not None:
            try:
                parse_duration(data[field], field=f"data.{field}")
            except InvalidInput as exc:
                raise MalformedEvent(f"plan.published {exc.message}", field=exc.field) from None
    for key, value in data["entitlements"].items():
        check_entitlement_value(key, value, field=f"data.entitlements.{key}")
    missing = [key for key in data["core"] if key not in data["entitlements"]]
    if missing:
        raise MalformedEvent(
            f"core entitlements {missing} are not granted by the plan", field="data.core"
        )
