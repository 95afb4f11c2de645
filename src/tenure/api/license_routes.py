"""The licensing API (SPEC "HTTP API essentials"): customers, products, licenses.

Every mutation is one ``Submission`` to the ledger writer, carrying the caller as
actor and the ``Idempotency-Key`` header; a retry with the same key and body gets
the same answer and appends nothing. Bodies are parsed here (not by FastAPI) so
that every malformed body, including one that is not JSON at all, is a 400 naming
the field at fault. The use cases are ``tenure.service.handlers.licensing``.
"""

from __future__ import annotations

from collections.abc import Callable
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

from tenure.api.auditing import writer_of
from tenure.api.auth import require
from tenure.api.bodies import documented, parse_body
from tenure.api.problems import problem_responses
from tenure.api.runtime import runtime_of
from tenure.api.schemas import NEEDS_APPROVAL, answers
from tenure.domain.commands import IssueLicense
from tenure.domain.values import Code, CustomerId, EntitlementKey, Text
from tenure.service.apikeys import Principal
from tenure.service.handlers import licensing as cases
from tenure.service.handlers.licensing import MAX_IDEMPOTENCY_KEY
from tenure.service.licensing import (
    MAX_PAGE,
    IssuedLicense,
    License,
    LicenseHistory,
    LicenseList,
    ProductList,
)
from tenure.service.personal import Customer, CustomerErasure
from tenure.service.views import ApprovalPending

router = APIRouter(prefix="/v1", tags=["licenses"], responses=problem_responses(401, 403))


def _may(action: str) -> Any:
    """The caller, if its role may perform ``action`` (see ``tenure.service.policy``)."""
    return Depends(require(action))


LicenseReader = Annotated[Principal, _may("license.read")]
LicenseChanger = Annotated[Principal, _may("license.change")]
MAX_BODY_BYTES = 64 * 1024


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
"""The header as ``checked_idempotency_key`` takes it, for the OpenAPI document."""


def _idempotency_key(request: Request) -> str | None:
    """The raw header: the use case checks it when it submits the change."""
    return request.headers.get("idempotency-key")


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
    runtime = request.app.state.runtime
    customer, created = await run_in_threadpool(
        cases.create_customer, writer_of(request), runtime.store, runtime.personal, caller,
        body.name, body.email, body.external_id, _idempotency_key(request),
    )  # fmt: skip
    return JSONResponse(customer, status_code=201 if created else 200)


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
    runtime = request.app.state.runtime
    return cases.get_customer(runtime.store, runtime.personal, caller, customer)


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
    runtime = request.app.state.runtime
    return await run_in_threadpool(
        cases.erase_customer, writer_of(request), runtime.store, runtime.personal, caller,
        customer, body.reason, _idempotency_key(request),
    )  # fmt: skip


@router.get("/products", response_model=None, responses=answers(ProductList, "The products"))
def list_products(
    request: Request, caller: Annotated[Principal, _may("product.read")]
) -> ProductList:
    """Products with their features and the latest version of each of their plans."""
    return cases.list_products(runtime_of(request).store, caller)


# ---------------------------------------------------------------- licenses: reads


@router.get(
    "/licenses",
    response_model=None,
    responses={**answers(LicenseList, "One page of licenses"), **problem_responses(400)},
)
def list_licenses(
    request: Request,
    caller: LicenseReader,
    customer: Annotated[str | None, Query(max_length=64)] = None,
    status: Annotated[str | None, Query(max_length=16)] = None,
    product: Annotated[str | None, Query(max_length=64)] = None,
    cursor: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
) -> LicenseList:
    """Licenses by serial, filtered: ``{"licenses": [...], "next_cursor"}``.

    Pass ``next_cursor`` back as ``cursor`` for the next page; it is null on the last.
    """
    return cases.list_licenses(
        runtime_of(request).store,
        caller,
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
def get_license(request: Request, caller: LicenseReader, serial: str) -> License:
    """One license (never its key); 404 if unknown."""
    return cases.get_license(runtime_of(request).store, caller, serial)


@router.get(
    "/licenses/{serial}/history",
    response_model=None,
    responses={**answers(LicenseHistory, "The license's events"), **problem_responses(404)},
)
def get_license_history(request: Request, caller: LicenseReader, serial: str) -> LicenseHistory:
    """The license's ledger events in order: ``{"events": [{"seq", "event"}]}``."""
    return cases.license_history(runtime_of(request).store, caller, serial)


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
    caller: LicenseReader,
    system: str,
    legacy_id: str,
) -> License:
    """The license that ``legacy_id`` of ``system`` was imported as (docs/import.md);
    404 if none was."""
    return cases.license_by_legacy_id(runtime_of(request).store, caller, system, legacy_id)


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
    order = IssueLicense(body.product, body.plan, body.customer, body.order_ref, body.plan_version)
    runtime = request.app.state.runtime
    issued = await run_in_threadpool(
        cases.issue_license, writer_of(request), runtime.store, runtime.license_keys, caller,
        order, _idempotency_key(request),
    )  # fmt: skip
    return JSONResponse(issued, status_code=201 if issued["created"] else 200)


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


async def _change(request: Request, use_case: Callable[..., License], *args: Any) -> License:
    """Run a license change's use case in the thread pool with the writer, the store
    and ``args`` (the caller, the serial, the body's values), then the request's
    ``Idempotency-Key``."""
    changed: License = await run_in_threadpool(
        use_case, writer_of(request), runtime_of(request).store, *args, _idempotency_key(request)
    )
    return changed


@router.post("/licenses/{serial}/renew", **_change_route(RenewIn))
async def renew_license(request: Request, caller: LicenseChanger, serial: str) -> License:
    """Extend the expiry by ``duration`` (default: the plan's) → the updated license."""
    body = await parse_body(request, RenewIn, MAX_BODY_BYTES)
    return await _change(request, cases.renew_license, caller, serial, body.duration, body.reason)


@router.post("/licenses/{serial}/suspend", **_change_route(RequiredReasonIn))
async def suspend_license(
    request: Request, caller: Annotated[Principal, _may("license.suspend")], serial: str
) -> License:
    """Suspend ``{"reason"}`` (required) → the updated license; 409 if not active."""
    body = await parse_body(request, RequiredReasonIn, MAX_BODY_BYTES)
    return await _change(request, cases.suspend_license, caller, serial, body.reason)


@router.post("/licenses/{serial}/reinstate", **_change_route(ReasonIn))
async def reinstate_license(
    request: Request, caller: Annotated[Principal, _may("license.reinstate")], serial: str
) -> License:
    """Reinstate a suspended license → the updated license; 409 if not suspended."""
    body = await parse_body(request, ReasonIn, MAX_BODY_BYTES)
    return await _change(request, cases.reinstate_license, caller, serial, body.reason)


@router.post("/licenses/{serial}/revoke", **_change_route(RequiredReasonIn, gated=True))
async def revoke_license(request: Request, caller: LicenseChanger, serial: str) -> Any:
    """Revoke ``{"reason"}`` (required; terminal) → the updated license; or, when it
    would cross ``TENURE_APPROVAL_REVOKE_THRESHOLD`` revocations within
    ``TENURE_APPROVAL_REVOKE_WINDOW_MINUTES``, 202 ``{"approval": {...}}``: a mass
    revocation needs a second principal's approval (docs/approvals.md)."""
    body = await parse_body(request, RequiredReasonIn, MAX_BODY_BYTES)
    runtime = request.app.state.runtime
    revoked = await run_in_threadpool(
        cases.revoke_license, writer_of(request), runtime.store, runtime.settings, caller,
        serial, body.reason, _idempotency_key(request),
    )  # fmt: skip
    if isinstance(revoked, ApprovalPending):
        return JSONResponse(revoked.to_json(), status_code=202)
    return revoked


@router.post("/licenses/{serial}/change-plan", **_change_route(ChangePlanIn))
async def change_plan(request: Request, caller: LicenseChanger, serial: str) -> License:
    """Move to ``{"plan", "plan_version"?}`` (default: its latest) → the updated license."""
    body = await parse_body(request, ChangePlanIn, MAX_BODY_BYTES)
    return await _change(
        request, cases.change_plan, caller, serial, body.plan, body.plan_version, body.reason
    )


@router.post("/licenses/{serial}/override", **_change_route(OverrideIn))
async def override_entitlement(request: Request, caller: LicenseChanger, serial: str) -> License:
    """Set ``{"entitlement", "value", "reason"}`` (null value removes) → the updated license."""
    body = await parse_body(request, OverrideIn, MAX_BODY_BYTES)
    return await _change(
        request, cases.override_entitlement, caller, serial, body.entitlement, body.value,
        body.reason,
    )  # fmt: skip


@router.post("/licenses/{serial}/transfer", **_change_route(TransferIn))
async def transfer_license(request: Request, caller: LicenseChanger, serial: str) -> License:
    """Transfer to ``{"customer"}`` → the updated license; 404 for an unknown customer."""
    body = await parse_body(request, TransferIn, MAX_BODY_BYTES)
    return await _change(
        request, cases.transfer_license, caller, serial, body.customer, body.reason
    )
