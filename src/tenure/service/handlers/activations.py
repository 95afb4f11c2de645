"""The use cases of activations (docs/offline.md): activate a device on a license's
seats, renew a floating lease, deactivate, list a license's activations. The API's
activation routes call them. Each change is one ledger event through the writer,
audited in the same transaction.

``holder`` is the serial of the one license a ``License`` credential may act on
(None for an API key, which acts on any license of its account): an activation of
another license does not exist for it (``NotFound``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tenure.domain.activations import (
    ActivateDevice,
    Activation,
    ActivationList,
    DeactivateDevice,
    RenewLease,
    activation_view,
    fingerprint_hash,
)
from tenure.errors import NotFound
from tenure.service import activations
from tenure.service.apikeys import Principal
from tenure.service.handlers import Submit
from tenure.service.ledger import Submission
from tenure.store.unit import Store


def _now() -> datetime:
    return datetime.now(UTC)


def _answer(result: dict[str, Any]) -> Activation:
    row = {**result, "status": result.get("status", "active")}
    return activation_view(row, _now())


def _require_own(store: Store, caller: Principal, holder: str | None, activation: str) -> None:
    """``NotFound`` for an unknown activation, and for one of another license than
    ``holder``'s (its id says nothing to that caller)."""
    found = activations.get_activation(store, caller.account, activation, _now())
    if holder is not None and holder != found["serial"]:
        raise NotFound(f"activation {activation} not found")


def activate_device(
    submit: Submit, caller: Principal, serial: str, fingerprint: str, lease_seconds: int
) -> tuple[Activation, bool]:
    """Activate the device of ``fingerprint`` on license ``serial`` → the activation
    and whether this request created it (False: the device already held it; a
    floating lease more than half used is renewed). ``Conflict`` ``seat_limit`` when
    every seat is held, ``license_inactive`` for a license that may not be used."""
    command = ActivateDevice(serial, fingerprint_hash(serial, fingerprint), lease_seconds)
    outcome = submit(Submission.by(caller, command))
    return _answer(outcome.result), bool(outcome.result.get("created"))


def renew_lease(
    submit: Submit,
    store: Store,
    caller: Principal,
    holder: str | None,
    activation: str,
    lease_seconds: int,
) -> Activation:
    """Renew a floating lease (a node-locked activation answers unchanged) → the
    activation. ``NotFound`` for an activation the caller may not see; ``Conflict``
    when it was deactivated, its lease ended and its seat was taken, or the license
    is no longer usable."""
    _require_own(store, caller, holder, activation)
    outcome = submit(Submission.by(caller, RenewLease(activation, lease_seconds)))
    return _answer(outcome.result)


def deactivate_device(
    submit: Submit, store: Store, caller: Principal, holder: str | None, activation: str
) -> Activation:
    """Deactivate and free the seat → the activation (again: unchanged). ``NotFound``
    for an activation the caller may not see."""
    _require_own(store, caller, holder, activation)
    outcome = submit(Submission.by(caller, DeactivateDevice(activation)))
    return _answer(outcome.result)


def list_activations(store: Store, caller: Principal, serial: str) -> ActivationList:
    """The activations of license ``serial``, deactivated ones too."""
    return activations.license_activations(store, caller.account, serial, _now())
