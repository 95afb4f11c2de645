"""Activations (docs/offline.md): bind devices to a license's seats, keep floating
leases alive, free seats.

An application calls with ``Authorization: License <license key>`` and acts on its
own license only; API keys whose role may ``activation.manage`` act on any license
of their account. Each change is one ledger event through the writer, audited in
the same transaction. The use cases are ``tenure.service.handlers.activations``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from tenure.api.auditing import writer_of
from tenure.api.auth import API_KEY_OR_LICENSE, CheckCaller, key_or_license
from tenure.api.bodies import documented, parse_body
from tenure.api.problems import problem_responses
from tenure.api.runtime import runtime_of
from tenure.api.schemas import answers
from tenure.domain.activations import Activation, ActivationList
from tenure.service.handlers import activations as cases

router = APIRouter(prefix="/v1", tags=["activations"], responses=problem_responses(401, 403))
Manager = Annotated[CheckCaller, Depends(key_or_license("activation.manage"))]
Reader = Annotated[CheckCaller, Depends(key_or_license("license.read"))]
MAX_BODY_BYTES = 4 * 1024


class ActivationIn(BaseModel):
    """The device to activate: any stable string the application derives from it."""

    model_config = ConfigDict(extra="forbid")

    fingerprint: Annotated[str, Field(min_length=1, max_length=256)]


@router.post(
    "/licenses/{serial}/activations",
    status_code=201,
    response_model=None,
    responses={
        **answers(Activation, "The device's new activation", 201),
        **answers(Activation, "This device already holds the activation"),
        **problem_responses(400, 404, 409, 503),
    },
    openapi_extra={**documented(ActivationIn), **API_KEY_OR_LICENSE},
)
async def activate_device(request: Request, caller: Manager, serial: str) -> JSONResponse:
    """Activate ``{"fingerprint"}`` on license ``serial`` → 201 with the activation,
    or 200 when the device already holds it (a floating lease more than half used is
    renewed). 409 ``seat_limit`` when every seat is held, 409 ``license_inactive``
    for a suspended, revoked or expired license."""
    caller.require_serial(serial)
    body = await parse_body(request, ActivationIn, MAX_BODY_BYTES)
    activation, created = await run_in_threadpool(
        cases.activate_device, writer_of(request), caller.principal, serial, body.fingerprint,
        runtime_of(request).settings.lease_seconds,
    )  # fmt: skip
    return JSONResponse(activation, status_code=201 if created else 200)


@router.post(
    "/activations/{activation}/heartbeat",
    response_model=None,
    responses={**answers(Activation, "The activation"), **problem_responses(404, 409, 503)},
    openapi_extra=API_KEY_OR_LICENSE,
)
async def renew_lease(request: Request, caller: Manager, activation: str) -> Activation:
    """Renew a floating lease (node-locked activations answer unchanged) → the
    activation. 409 when it was deactivated, when its lease ended and its seat was
    taken meanwhile (``seat_limit``), or when the license is no longer usable."""
    runtime = runtime_of(request)
    return await run_in_threadpool(
        cases.renew_lease, writer_of(request), runtime.store, caller.principal,
        caller.holder_serial, activation, runtime.settings.lease_seconds,
    )  # fmt: skip


@router.delete(
    "/activations/{activation}",
    response_model=None,
    responses={**answers(Activation, "The deactivated activation"), **problem_responses(404, 503)},
    openapi_extra=API_KEY_OR_LICENSE,
)
async def deactivate_device(request: Request, caller: Manager, activation: str) -> Activation:
    """Deactivate and free the seat → the activation, ``status: deactivated``
    (again: unchanged)."""
    return await run_in_threadpool(
        cases.deactivate_device, writer_of(request), request.app.state.runtime.store,
        caller.principal, caller.holder_serial, activation,
    )  # fmt: skip


@router.get(
    "/licenses/{serial}/activations",
    response_model=None,
    responses={**answers(ActivationList, "The license's activations"), **problem_responses(404)},
    openapi_extra=API_KEY_OR_LICENSE,
)
async def list_activations(request: Request, caller: Reader, serial: str) -> ActivationList:
    """``{"activations": [...]}`` of license ``serial`` (deactivated ones too)."""
    caller.require_serial(serial)
    store = request.app.state.runtime.store
    return await run_in_threadpool(cases.list_activations, store, caller.principal, serial)
