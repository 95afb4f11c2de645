"""Activations (docs/offline.md): bind devices to a license's seats, keep floating
leases alive, free seats.

An application calls with ``Authorization: License <license key>`` and acts on its
own license only; API keys whose role may ``activation.manage`` act on any license
of their account. Each change is one ledger event through the writer, audited in
the same transaction.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from tenure.api.auditing import submit_audited
from tenure.api.auth import API_KEY_OR_LICENSE, CheckCaller, key_or_license
from tenure.api.bodies import documented, parse_body
from tenure.api.problems import problem_responses
from tenure.api.schemas import answers
from tenure.domain.activations import (
    ActivateDevice,
    Activation,
    ActivationList,
    DeactivateDevice,
    RenewLease,
    activation_view,
    fingerprint_hash,
)
from tenure.domain.commands import Command
from tenure.errors import NotFound
from tenure.service import activations
from tenure.service.ledger import Outcome, Submission

router = APIRouter(prefix="/v1", tags=["activations"], responses=problem_responses(401, 403))
Manager = Annotated[CheckCaller, Depends(key_or_license("activation.manage"))]
Reader = Annotated[CheckCaller, Depends(key_or_license("license.read"))]
MAX_BODY_BYTES = 4 * 1024


class ActivationIn(BaseModel):
    """The device to activate: any stable string the application derives from it."""

    model_config = ConfigDict(extra="forbid")

    fingerprint: Annotated[str, Field(min_length=1, max_length=256)]


def _now() -> datetime:
    return datetime.now(UTC)


def _lease_seconds(request: Request) -> int:
    seconds: int = request.app.state.runtime.settings.lease_seconds
    return seconds


async def _submit(request: Request, caller: CheckCaller, command: Command) -> Outcome:
    return await submit_audited(request, Submission.by(caller.principal, command))


def _answer(result: dict[str, Any]) -> Activation:
    row = {**result, "status": result.get("status", "active")}
    return activation_view(row, _now())


async def _own_activation(request: Request, caller: CheckCaller, activation: str) -> None:
    """``NotFound`` for an unknown activation, and for a License credential naming
    another license's activation (its id says nothing to that caller)."""
    store = request.app.state.runtime.store
    found = await run_in_threadpool(
        activations.get_activation, store, caller.account, activation, _now()
    )
    if caller.holder is not None and caller.holder.serial != found["serial"]:
        raise NotFound(f"activation {activation} not found")


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
    command = ActivateDevice(
        serial, fingerprint_hash(serial, body.fingerprint), _lease_seconds(request)
    )
    outcome = await _submit(request, caller, command)
    created = bool(outcome.result.get("created"))
    return JSONResponse(_answer(outcome.result), status_code=201 if created else 200)


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
    await _own_activation(request, caller, activation)
    outcome = await _submit(request, caller, RenewLease(activation, _lease_seconds(request)))
    return _answer(outcome.result)


@router.delete(
    "/activations/{activation}",
    response_model=None,
    responses={**answers(Activation, "The deactivated activation"), **problem_responses(404, 503)},
    openapi_extra=API_KEY_OR_LICENSE,
)
async def deactivate_device(request: Request, caller: Manager, activation: str) -> Activation:
    """Deactivate and free the seat → the activation, ``status: deactivated``
    (again: unchanged)."""
    await _own_activation(request, caller, activation)
    outcome = await _submit(request, caller, DeactivateDevice(activation))
    return _answer(outcome.result)


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
    return await run_in_threadpool(
        activations.license_activations, store, caller.account, serial, _now()
    )
