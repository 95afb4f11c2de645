"""The licensing API (SPEC "HTTP API essentials"): customers, products, licenses.

Every mutation is one ``Submission`` to the ledger writer, carrying the caller as
actor and the ``Idempotency-Key`` header; a retry with the same key and body gets
the same answer and appends nothing. Bodies are parsed here (not by FastAPI) so
that every malformed body, including one that is not JSON at all, is a 400 naming
the field at fault.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
)
from starlette.concurrency import run_in_threadpool

from tenure.api.approval_routes import request_approval
from tenure.api.auditing import submit_audited
from tenure.api.auth import require
from tenure.api.bodies import documented, parse_body
from tenure.api.problems import problem_responses
from tenure.api.schemas import NEEDS_APPROVAL, answers
from tenure.domain.commands import (
    ChangePlan,
    Command,
    CreateCustomer,
    EraseCustomer,
    IssueLicense,
    OverrideEntitlement,
    ReinstateLicense,
    RenewLicense,
    RevokeLicense,
    SuspendLicense,
    TransferLicense,
)
from tenure.domain.events import (
    Code,
    CustomerId,
    EntitlementKey,
    Text,
    check_entitlement_value,
)
from tenure.errors import InvalidInput, MalformedEvent
from tenure.service import approvals, licensing
from tenure.service.apikeys import Principal
from tenure.service.ledger import Outcome
from tenure.service.licensing import (
    IssuedLicense,
    License,
    LicenseHistory,
    LicenseList,
    ProductList,
)
from tenure.service.personal import Customer, CustomerErasure, PersonalData, erasure

router = APIRouter(prefix="/v1", tags=["licenses"], responses=problem_responses(401, 403))


def _may(action: str) -> Any:
    """The caller, if its role may perform ``action`` (see ``tenure.service.policy``)."""
    return Depends(require(action))


MAX_BODY_BYTES = 64 * 1024
MAX_IDEMPOTENCY_KEY = 255
MAX_INT = 2**53 - 1
"""Integers beyond this lose precision in JSON readers of other languages."""


def _has_text(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


Reason = Annotated[Text, AfterValidator(_has_text)]
Email = Annotated[
    str, StringConstraints(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")
]
DurationText = Annotated[str, StringConstraints(min_length=2, max_length=32)]
PlanVersion = Annotated[int, Field(ge=1, le=2**31 - 1)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class CustomerIn(_Body):
    name: Annotated[Text, AfterValidator(_has_text)]
    email: Email
    external_id: Text | None = None


class IssueIn(_Body):
    product: Code
    plan: Code
    customer: CustomerId
    order_ref: Text
    plan_version: PlanVersion | None = None


class ReasonIn(_Body):
    reason: Reason | None = None


class RequiredReasonIn(_Body):
    reason: Reason


class RenewIn(ReasonIn):
    duration: DurationText | None = None


class ChangePlanIn(ReasonIn):
    plan: Code
    plan_version: PlanVersion | None = None


class OverrideIn(RequiredReasonIn):
    entitlement: EntitlementKey
    value: StrictBool | StrictInt | None = Field(
        description="true/false for feature: and module:, a non-negative integer for seats "
        "and quota:, null to remove the override"
    )


class TransferIn(ReasonIn):
    customer: CustomerId


IDEMPOTENCY_KEY: dict[str, Any] = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "A retry with the same key and body gets the same answer and appends "
    "nothing; the same key with another request is a 409.",
    "schema": {"type": "string", "pattern": f"^[!-~]{{1,{MAX_IDEMPOTENCY_KEY}}}$"},
}
"""The header as ``_idempotency_key`` reads it, for the OpenAPI document."""


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY or not all(" " < c <= "~" for c in key):
        raise InvalidInput(
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters",
            field="Idempotency-Key",
        )
    return key


def _store(request: Request) -> Any:
    return request.app.state.runtime.store


def _read_customer(request: Request, account: str, customer: str) -> Customer:
    """The customer with its personal fields opened (``tenure.service.personal``)."""
    personal: PersonalData = request.app.state.runtime.personal
    return personal.read_customer(request.app.state.runtime.store, account, customer)


async def _submit(
    request: Request, caller: Principal, command: Command, reason: str | None
) -> Outcome:
    submission = licensing.change_submission(caller, command, reason, _idempotency_key(request))
    return await submit_audited(request, submission)


async def _license_after(request: Request, caller: Principal, serial: str) -> License:
    return await run_in_threadpool(licensing.get_license, _store(request), caller.account, serial)


async def _require_customer(request: Request, caller: Principal, customer: str) -> None:
    """``NotFound`` (field ``customer``) before a command that names an unknown customer."""
    await run_in_threadpool(licensing.get_customer, _store(request), caller.account, customer)


# ---------------------------------------------------------------- customers and products


@router.post(
    "/customers",
    status_code=201,
    response_model=None,
    responses={
        **answers(Customer, "Created", 201),
        **answers(Customer, "The customer of this external_id already existed"),
        **problem_responses(400, 409, 503),
    },
    openapi_extra=documented(CustomerIn, IDEMPOTENCY_KEY),
)
async def create_customer(
    request: Request, caller: Annotated[Principal, _may("customer.write")]
) -> JSONResponse:
    """Create a customer ``{"name", "email", "external_id"?}`` → 201 ``{"id", …}``.

    The same ``external_id`` with the same name and email finds the existing
    customer (200); with other details it is a 409.
    """
    body = await parse_body(request, CustomerIn, MAX_BODY_BYTES)
    command = CreateCustomer(body.name, body.email, body.external_id)
    outcome = await _submit(request, caller, command, None)
    customer = await run_in_threadpool(
        _read_customer, request, caller.account, outcome.result["customer"]
    )
    return JSONResponse(customer, status_code=201 if outcome.result["created"] else 200)


@router.get(
    "/customers/{customer}",
    response_model=None,
    responses={**answers(Customer, "The customer"), **problem_responses(404)},
)
def get_customer(
    request: Request, caller: Annotated[Principal, _may("customer.read")], customer: str
) -> Customer:
    """One customer: ``{"id", "name", "email", "external_id", "erased"}``; 404 if
    unknown. An erased customer's name and email are null."""
    return _read_customer(request, caller.account, customer)


@router.post(
    "/customers/{customer}/erase",
    response_model=None,
    openapi_extra=documented(RequiredReasonIn),
    responses={
        **answers(CustomerErasure, "Erased (or already erased)"),
        **problem_responses(400, 404, 503),
    },
)
async def erase_customer(
    request: Request, caller: Annotated[Principal, _may("customer.erase")], customer: str
) -> CustomerErasure:
    """Erase a customer's personal data ``{"reason"}`` (owner, admin): a
    ``customer.erased`` event, then its data key destroyed (crypto-shredding). Its
    licenses keep working; the ledger keeps verifying. 404 for an unknown customer."""
    body = await parse_body(request, RequiredReasonIn)
    outcome = await _submit(request, caller, EraseCustomer(customer), body.reason)
    personal: PersonalData = request.app.state.runtime.personal
    destroyed = await run_in_threadpool(personal.datakeys.destroy, caller.account, customer)
    return erasure(outcome.result, destroyed)


@router.get("/products", response_model=None, responses=answers(ProductList, "The products"))
def list_products(
    request: Request, caller: Annotated[Principal, _may("product.read")]
) -> ProductList:
    """Products with their features and the latest version of each of their plans."""
    return licensing.list_products(_store(request), caller.account)


# ---------------------------------------------------------------- licenses: reads


@router.get(
    "/licenses",
    response_model=None,
    responses={**answers(LicenseList, "One page of licenses"), **problem_responses(400)},
)
def list_licenses(
    request: Request,
    caller: Annotated[Principal, _may("license.read")],
    customer: Annotated[str | None, Query(max_length=64)] = None,
    status: Annotated[str | None, Query(max_length=16)] = None,
    product: Annotated[str | None, Query(max_length=64)] = None,
    cursor: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=licensing.MAX_PAGE)] = 50,
) -> LicenseList:
    """Licenses by serial, filtered: ``{"licenses": [...], "next_cursor"}``.

    Pass ``next_cursor`` back as ``cursor`` for the next page; it is null on the last.
    """
    return licensing.list_licenses(
        _store(request),
        caller.account,
        customer=customer or None,
        status=status or None,
        product=product or None,
        cursor=cursor or None,
        limit=limit,
    )


@router.get(
    "/licenses/{serial}",
    response_model=None,
    responses={**answers(License, "The license"), **problem_responses(404)},
)
def get_license(
    request: Request, caller: Annotated[Principal, _may("license.read")], serial: str
) -> License:
    """One license (never its key); 404 if unknown."""
    return licensing.get_license(_store(request), caller.account, serial)


@router.get(
    "/licenses/{serial}/history",
    response_model=None,
    responses={**answers(LicenseHistory, "The license's events"), **problem_responses(404)},
)
def get_license_history(
    request: Request, caller: Annotated[Principal, _may("license.read")], serial: str
) -> LicenseHistory:
    """The license's ledger events in order: ``{"events": [{"seq", "event"}]}``."""
    return licensing.license_history(_store(request), caller.account, serial)


@router.get(
    "/licenses/by-legacy-id/{system}/{legacy_id:path}",
    response_model=None,
    responses={
        **answers(License, "The license imported as that legacy id"),
        **problem_responses(404),
    },
)
def get_license_by_legacy_id(
    request: Request,
    caller: Annotated[Principal, _may("license.read")],
    system: str,
    legacy_id: str,
) -> License:
    """The license that ``legacy_id`` of ``system`` was imported as (docs/import.md);
    404 if none was."""
    store = _store(request)
    serial = licensing.serial_by_legacy_id(store, caller.account, system, legacy_id)
    return licensing.get_license(store, caller.account, serial)


# ---------------------------------------------------------------- licenses: writes


@router.post(
    "/licenses",
    status_code=201,
    response_model=None,
    responses={
        **answers(IssuedLicense, "Issued", 201),
        **answers(IssuedLicense, "This order was issued before: the same license and key"),
        **problem_responses(400, 404, 409, 503),
    },
    openapi_extra=documented(IssueIn, IDEMPOTENCY_KEY),
)
async def issue_license(
    request: Request, caller: Annotated[Principal, _may("license.issue")]
) -> JSONResponse:
    """Issue ``{"product", "plan", "customer", "order_ref", "plan_version"?}`` → 201
    ``{"serial", "key", "status", "plan_version", "expires_at", …}``.

    The serial is derived from product, customer and order_ref: issuing the same
    order again answers 200 with the same serial and key (409 on another plan).
    """
    body = await parse_body(request, IssueIn, MAX_BODY_BYTES)
    await _require_customer(request, caller, body.customer)
    command = IssueLicense(
        body.product, body.plan, body.customer, body.order_ref, body.plan_version
    )
    outcome = await _submit(request, caller, command, None)
    serial = outcome.result["serial"]
    view = await _license_after(request, caller, serial)
    runtime = request.app.state.runtime
    key = runtime.license_keys.key(caller.account, serial)
    created = bool(outcome.result["created"])
    issued: IssuedLicense = {**view, "key": key, "created": created}
    return JSONResponse(issued, status_code=201 if created else 200)


def _change_route(body: type[BaseModel], gated: bool = False) -> dict[str, Any]:
    """The route arguments of a license change: its body, the updated license (or,
    ``gated``, an approval request)."""
    return {
        "response_model": None,
        "responses": {
            **answers(License, "The updated license"),
            **(NEEDS_APPROVAL if gated else {}),
            **problem_responses(400, 404, 409, 503),
        },
        "openapi_extra": documented(body, IDEMPOTENCY_KEY),
    }


async def change_license(
    request: Request, caller: Principal, serial: str, command: Command, reason: str | None
) -> License:
    """Append ``command`` (with ``reason``) as ``caller`` through the ledger writer,
    audited there, and answer the license as it is after."""
    await _submit(request, caller, command, reason)
    return await _license_after(request, caller, serial)


@router.post("/licenses/{serial}/renew", **_change_route(RenewIn))
async def renew_license(
    request: Request, caller: Annotated[Principal, _may("license.change")], serial: str
) -> License:
    """Extend the expiry by ``duration`` (default: the plan's) → the updated license."""
    body = await parse_body(request, RenewIn, MAX_BODY_BYTES)
    return await change_license(
        request, caller, serial, RenewLicense(serial, body.duration), body.reason
    )


@router.post("/licenses/{serial}/suspend", **_change_route(RequiredReasonIn))
async def suspend_license(
    request: Request, caller: Annotated[Principal, _may("license.suspend")], serial: str
) -> License:
    """Suspend ``{"reason"}`` (required) → the updated license; 409 if not active."""
    body = await parse_body(request, RequiredReasonIn, MAX_BODY_BYTES)
    return await change_license(request, caller, serial, SuspendLicense(serial), body.reason)


@router.post("/licenses/{serial}/reinstate", **_change_route(ReasonIn))
async def reinstate_license(
    request: Request, caller: Annotated[Principal, _may("license.reinstate")], serial: str
) -> License:
    """Reinstate a suspended license → the updated license; 409 if not suspended."""
    body = await parse_body(request, ReasonIn, MAX_BODY_BYTES)
    return await change_license(request, caller, serial, ReinstateLicense(serial), body.reason)


async def revoke_needs_approval(request: Request, caller: Principal, serial: str) -> bool:
    """The two-person rule of a revocation (docs/approvals.md): would revoking
    ``serial`` cross ``TENURE_APPROVAL_REVOKE_THRESHOLD`` revocations within
    ``TENURE_APPROVAL_REVOKE_WINDOW_MINUTES``? (``tenure.service.approvals.revoke_gated``,
    which the console asks too.)"""
    settings = request.app.state.runtime.settings
    now = datetime.now(UTC)
    store = request.app.state.runtime.store
    gated: bool = await run_in_threadpool(
        approvals.revoke_gated, store, settings, caller.account, serial, now
    )
    return gated


@router.post("/licenses/{serial}/revoke", **_change_route(RequiredReasonIn, gated=True))
async def revoke_license(
    request: Request, caller: Annotated[Principal, _may("license.change")], serial: str
) -> Any:
    """Revoke ``{"reason"}`` (required; terminal) → the updated license; or, when it
    would cross ``TENURE_APPROVAL_REVOKE_THRESHOLD`` revocations within
    ``TENURE_APPROVAL_REVOKE_WINDOW_MINUTES``, 202 ``{"approval": {...}}``: a mass
    revocation needs a second principal's approval (docs/approvals.md)."""
    body = await parse_body(request, RequiredReasonIn, MAX_BODY_BYTES)
    if await revoke_needs_approval(request, caller, serial):
        payload = {"serials": [serial]}
        return await request_approval(
            request, caller, "license.revoke", serial, payload, body.reason
        )
    return await change_license(request, caller, serial, RevokeLicense(serial), body.reason)


@router.post("/licenses/{serial}/change-plan", **_change_route(ChangePlanIn))
async def change_plan(
    request: Request, caller: Annotated[Principal, _may("license.change")], serial: str
) -> License:
    """Move to ``{"plan", "plan_version"?}`` (default: its latest) → the updated license."""
    body = await parse_body(request, ChangePlanIn, MAX_BODY_BYTES)
    command = ChangePlan(serial, body.plan, body.plan_version)
    return await change_license(request, caller, serial, command, body.reason)


@router.post("/licenses/{serial}/override", **_change_route(OverrideIn))
async def override_entitlement(
    request: Request, caller: Annotated[Principal, _may("license.change")], serial: str
) -> License:
    """Set ``{"entitlement", "value", "reason"}`` (null value removes) → the updated license."""
    body = await parse_body(request, OverrideIn, MAX_BODY_BYTES)
    if body.value is not None:
        try:
            check_entitlement_value(body.entitlement, body.value, "value")
        except MalformedEvent as exc:
            raise InvalidInput(exc.message, field="value") from None
        if not isinstance(body.value, bool) and body.value > MAX_INT:
            raise InvalidInput(f"value must be at most {MAX_INT}", field="value")
    command = OverrideEntitlement(serial, body.entitlement, body.value)
    return await change_license(request, caller, serial, command, body.reason)


@router.post("/licenses/{serial}/transfer", **_change_route(TransferIn))
async def transfer_license(
    request: Request, caller: Annotated[Principal, _may("license.change")], serial: str
) -> License:
    """Transfer to ``{"customer"}`` → the updated license; 404 for an unknown customer."""
    body = await parse_body(request, TransferIn, MAX_BODY_BYTES)
    await _require_customer(request, caller, body.customer)
    command = TransferLicense(serial, body.customer)
    return await change_license(request, caller, serial, command, body.reason)
