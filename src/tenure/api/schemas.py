"""The response bodies, as documentation: what ``/openapi.json`` promises clients.

These models only describe the answers. Routes still return plain dicts (with
``response_model=None``), so nothing here validates or re-serializes a response at
runtime — ``/v1/check`` is a hot path. Each model mirrors the service function that
builds the body (named in its docstring); keep the two in step. Shapes are closed
(``additionalProperties: false``) except where the data is genuinely open: entitlement
maps, an event's ``data``, an audit entry's ``detail``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict
from pydantic.json_schema import SkipJsonSchema

from tenure.domain.decisions import Reason
from tenure.domain.events import Code, CustomerId, EntitlementKey, EntitlementValue, Serial, Time
from tenure.service.views import ApprovalPending

Hex64 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Base64 = Annotated[str, Field(pattern=r"^[A-Za-z0-9+/]*={0,2}$")]
NonNegative = Annotated[int, Field(ge=0)]
Entitlements = dict[EntitlementKey, EntitlementValue]


def _no_default(schema: JsonDict) -> None:
    """For ``X | SkipJsonSchema[None] = None``: a member left out (never null) when it
    does not apply, so the schema says ``X``, optional, without ``default: null``."""
    schema.pop("default", None)


class Doc(BaseModel):
    """A closed response object."""

    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- problems


class Problem(Doc):
    """An RFC 9457 problem (``application/problem+json``); see ``tenure.api.problems``."""

    type: Annotated[str, Field(pattern=r"^https://tenure\.dev/problems/[a-z_]+$")] = Field(
        description="https://tenure.dev/problems/ followed by the stable error code"
    )
    title: str = Field(description="the error code in words")
    status: Annotated[int, Field(ge=400, le=599)]
    detail: str
    field: str | SkipJsonSchema[None] = Field(
        default=None,
        json_schema_extra=_no_default,
        description="the input at fault: a body path (checks[3].license), query parameter "
        "or header",
    )


# ---------------------------------------------------------------- operations


class Health(Doc):
    status: Literal["ok"]


# ---------------------------------------------------------------- customers and products


class Customer(Doc):
    """``tenure.service.personal.PersonalData.read_customer``."""

    id: CustomerId
    name: str | None
    email: str | None
    external_id: str | None
    erased: bool = Field(
        description="the customer's personal data was erased (its key destroyed): "
        "name and email are null"
    )


class CustomerErasure(Doc):
    """``POST /v1/customers/{id}/erase``."""

    customer: CustomerId
    erased: Literal[True]
    already: bool = Field(description="the customer was erased before this request")
    key_destroyed: bool = Field(description="a data key was found and destroyed")


class PlanVersion(Doc):
    """The latest version of a plan (a ``plan_versions`` row without plan and product)."""

    code: Code
    version: Annotated[int, Field(ge=1)]
    entitlements: Entitlements
    core: list[EntitlementKey]
    duration: str | None = Field(description="null: perpetual")
    grace: str | None
    offline_token_ttl: str
    activation: Literal["floating", "node-locked"]


class Product(Doc):
    code: Code
    name: str
    features: list[Code]
    plans: list[PlanVersion]


class ProductList(Doc):
    """``licensing.list_products``."""

    products: list[Product]


# ---------------------------------------------------------------- licenses


LicenseStatus = Literal["active", "in_grace", "expired", "suspended", "revoked"]
CheckStatus = Literal["active", "in_grace", "expired", "suspended", "revoked", "unknown"]


class License(Doc):
    """``licensing.get_license``: the row without its key hash, status at reading time."""

    serial: Serial
    product: Code
    customer: CustomerId
    plan: Code
    plan_version: Annotated[int, Field(ge=1)]
    order_ref: str
    status: LicenseStatus
    issued_at: Time
    expires_at: Time | None = Field(description="null: perpetual")
    grace_ends_at: Time | None
    overrides: Entitlements


class IssuedLicense(License):
    """The license, its key (shown to issuers on every issue of the same order) and
    whether this request created it."""

    key: str
    created: bool


class LicenseList(Doc):
    """``licensing.list_licenses``."""

    licenses: list[License]
    next_cursor: str | None = Field(description="pass as cursor for the next page; null last")


class EventActor(Doc):
    id: str
    role: str
    auth: str


class Event(Doc):
    """A ledger event envelope (``tenure.domain.events.Event``)."""

    id: Annotated[str, Field(pattern=r"^evt_[0-9a-f]{32}$")]
    account: str
    seq: NonNegative
    type: str
    schema_: int = Field(alias="schema")
    time: Time
    actor: EventActor
    reason: str | None
    idempotency_key: str | None
    data: dict[str, Any] = Field(description="the event type's data, by its schema version")


class LicenseEvent(Doc):
    seq: NonNegative
    event: Event


class LicenseHistory(Doc):
    """``licensing.license_history``."""

    events: list[LicenseEvent]


# ---------------------------------------------------------------- checks


class CheckpointRef(Doc):
    size: NonNegative
    root: Base64


class CheckAnswer(Doc):
    """``decide(...).to_json()`` plus ``checkpoint``, and ``serial`` when the license
    was named by its serial (``tenure.service.checks``)."""

    allowed: bool
    reason: Reason
    value: EntitlementValue | None
    status: CheckStatus
    expires_at: Time | None
    checkpoint: CheckpointRef | None = Field(description="the latest signed checkpoint")
    serial: Serial | SkipJsonSchema[None] = Field(
        default=None, json_schema_extra=_no_default, description="only when asked by serial"
    )


class CheckResults(Doc):
    results: list[CheckAnswer]


# ---------------------------------------------------------------- catalog


class ProductChange(Doc):
    """``tenure.domain.catalog.ProductChange.to_json``."""

    code: Code
    action: Literal["create", "update", "unchanged"]
    name: str
    previous_name: str | None
    features: list[Code]
    added_features: list[Code]


class EntitlementChange(Doc):
    key: EntitlementKey
    before: EntitlementValue | None = Field(alias="from", description="null: not granted")
    after: EntitlementValue | None = Field(alias="to", description="null: not granted")


class SettingChange(Doc):
    field: Literal["core", "duration", "grace", "offline_token_ttl", "activation"]
    before: Any = Field(alias="from")
    after: Any = Field(alias="to")


class PlanChange(Doc):
    """``tenure.domain.catalog.PlanChange.to_json``."""

    code: Code
    product: Code
    action: Literal["create", "new_version", "unchanged"]
    version: Annotated[int, Field(ge=1)]
    previous_version: Annotated[int, Field(ge=1)] | None
    entitlements: list[EntitlementChange]
    settings: list[SettingChange]
    takes_away: bool


class CatalogDiff(Doc):
    """``tenure.domain.catalog.CatalogDiff.to_json``."""

    products: list[ProductChange]
    plans: list[PlanChange]
    changes: NonNegative


# ---------------------------------------------------------------- ledger


class LedgerEvent(Doc):
    seq: NonNegative
    leaf_b64: Base64 = Field(description="the event's leaf bytes (RFC 8785 JSON)")
    event: Event


class EventsPage(Doc):
    events: list[LedgerEvent]
    size: NonNegative = Field(description="the ledger size")


class InclusionProof(Doc):
    """``queries.inclusion``."""

    index: NonNegative
    size: NonNegative
    leaf_hash_b64: Base64
    proof: list[Base64]


class ConsistencyProof(Doc):
    """``queries.consistency``."""

    old: NonNegative = Field(alias="from")
    new: NonNegative = Field(alias="to")
    proof: list[Base64]


# ---------------------------------------------------------------- audit


class Principal(Doc):
    id: str
    role: str
    auth: str


class AuditEntry(Doc):
    """``AuditEntry.body`` with its ``hash`` (``tenure.service.audit``)."""

    v: Literal[1]
    account: str
    seq: NonNegative
    time: Time
    principal: Principal
    action: str
    target: str | None
    outcome: Literal["allowed", "denied"]
    code: str
    rationale: str | None
    events: Annotated[list[NonNegative], Field(min_length=2, max_length=2)] | None = Field(
        description="[first_seq, count] of the ledger events the request appended"
    )
    detail: dict[str, Any]
    prev: Hex64
    hash: Hex64


class AuditPage(Doc):
    entries: list[AuditEntry]
    next_cursor: NonNegative | None


class AuditHead(Doc):
    size: NonNegative
    hash: Hex64


# ---------------------------------------------------------------- activations


class Activation(Doc):
    """An activation (``tenure.domain.activations.activation_view``)."""

    id: Annotated[str, Field(pattern=r"^act_[a-z2-7]{26}$")]
    serial: Serial
    fingerprint_hash: Hex64
    mode: Literal["floating", "node-locked"]
    status: Literal["active", "lease_expired", "deactivated"]
    lease_expires_at: Time | None


class ActivationList(Doc):
    """``tenure.service.activations.license_activations``."""

    activations: list[Activation]


# ---------------------------------------------------------------- tokens and keys


class MintedToken(Doc):
    """``tenure.service.tokens.Minted.answer``."""

    token: str
    expires_at: Time
    jti: Annotated[str, Field(pattern=r"^tok_[a-z2-7]{26}$")]
    account: str
    jwks_url: str


class IssuedLicenseFile(Doc):
    """``POST /v1/licenses/{serial}/license-file``."""

    license_file: str
    expires_at: Time
    jti: Annotated[str, Field(pattern=r"^tok_[a-z2-7]{26}$")]
    activation: Annotated[str, Field(pattern=r"^act_[a-z2-7]{26}$")]
    encrypted: bool


class PublicJWK(Doc):
    """An Ed25519 public key as RFC 8037 describes it (``tenure.crypto.jws.public_jwk``)."""

    kty: Literal["OKP"]
    crv: Literal["Ed25519"]
    x: str
    kid: str
    alg: Literal["EdDSA"]
    use: Literal["sig"]


class KeySet(Doc):
    """An RFC 7517 key set."""

    keys: list[PublicJWK]


class SigningKeyView(Doc):
    """A signing key's public part and lifecycle (``KeyRing.listing``)."""

    kid: str
    public_key: str
    created_at: Time
    retired_at: Time | None
    publish_until: Time | None


class KeyList(Doc):
    keys: list[SigningKeyView]


def answers(model: type[BaseModel], description: str, status: int = 200) -> dict[int | str, Any]:
    """OpenAPI ``responses`` for a successful answer whose body ``model`` describes
    (documentation only: the route keeps ``response_model=None``)."""
    return {status: {"model": model, "description": description}}


NEEDS_APPROVAL = answers(
    ApprovalPending, "Needs a second principal's approval: the request it made", 202
)
"""The 202 of a route the two-person rule gates."""
