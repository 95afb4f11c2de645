"""The use cases of licensing, one function per operation: customers (create, read,
erase), products, licenses (read, list, issue, renew, suspend, reinstate, revoke,
change plan, override an entitlement, transfer). The API's license routes and the
console's license actions call them.

Every change is one ``Submission`` by the caller (an API key) to the ledger writer,
which audits it in the transaction of its events. ``idempotency_key`` is the raw
``Idempotency-Key`` of the request (None without one): it is checked only when the
change is submitted, so a refusal before that (an unknown customer, a revocation
that needs approval) answers as if there were none.
"""

from __future__ import annotations

from datetime import UTC, datetime

from tenure.config import Settings
from tenure.crypto.keystore import LicenseKeys
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
from tenure.domain.events import check_entitlement_value
from tenure.domain.values import EntitlementValue
from tenure.errors import InvalidInput, MalformedEvent
from tenure.service import approvals, licensing
from tenure.service.apikeys import Principal
from tenure.service.handlers import Submit
from tenure.service.handlers.approvals import request_approval
from tenure.service.ledger import Outcome
from tenure.service.licensing import (
    IssuedLicense,
    License,
    LicenseHistory,
    LicenseList,
    ProductList,
)
from tenure.service.personal import Customer, CustomerErasure, PersonalData, erasure
from tenure.service.views import ApprovalPending
from tenure.store.unit import Store

MAX_IDEMPOTENCY_KEY = 255
MAX_INT = 2**53 - 1
"""Integers beyond this lose precision in JSON readers of other languages."""


def checked_idempotency_key(key: str | None) -> str | None:
    """``key`` if it is 1 to ``MAX_IDEMPOTENCY_KEY`` visible ASCII characters (or
    None); else ``InvalidInput`` (field ``Idempotency-Key``)."""
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY or not all(" " < c <= "~" for c in key):
        raise InvalidInput(
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters",
            field="Idempotency-Key",
        )
    return key


def _submit(
    submit: Submit,
    caller: Principal,
    command: Command,
    reason: str | None,
    idempotency_key: str | None,
) -> Outcome:
    key = checked_idempotency_key(idempotency_key)
    return submit(licensing.change_submission(caller, command, reason, key))


# ---------------------------------------------------------------- customers and products


def create_customer(
    submit: Submit,
    store: Store,
    personal: PersonalData,
    caller: Principal,
    name: str,
    email: str,
    external_id: str | None,
    idempotency_key: str | None = None,
) -> tuple[Customer, bool]:
    """Create a customer → it, and whether this request created it (False: the same
    ``external_id`` with the same name and email found the existing one; with other
    details it is a ``Conflict``)."""
    command = CreateCustomer(name, email, external_id)
    outcome = _submit(submit, caller, command, None, idempotency_key)
    customer = personal.read_customer(store, caller.account, outcome.result["customer"])
    return customer, bool(outcome.result["created"])


def get_customer(
    store: Store, personal: PersonalData, caller: Principal, customer: str
) -> Customer:
    """One customer, its personal fields opened (null once erased); ``NotFound``
    (field ``customer``) if unknown."""
    return personal.read_customer(store, caller.account, customer)


def erase_customer(
    submit: Submit,
    store: Store,
    personal: PersonalData,
    caller: Principal,
    customer: str,
    reason: str,
    idempotency_key: str | None = None,
) -> CustomerErasure:
    """Append ``customer.erased`` with ``reason``; the writer deletes the customer's
    data key in the same transaction (crypto-shredding). A key found afterwards (one
    restored since an earlier erasure) is deleted too. ``NotFound`` if unknown."""
    had_key = personal.has_key(store, caller.account, customer)
    outcome = _submit(submit, caller, EraseCustomer(customer), reason, idempotency_key)
    lingering = personal.destroy(store, caller.account, customer)
    return erasure(outcome.result, (had_key and not outcome.replayed) or lingering)


def list_products(store: Store, caller: Principal) -> ProductList:
    """The account's products with their features and each plan's latest version."""
    return licensing.list_products(store, caller.account)


# ---------------------------------------------------------------- licenses: reads


def get_license(store: Store, caller: Principal, serial: str) -> License:
    """One license (never its key); ``NotFound`` if unknown."""
    return licensing.get_license(store, caller.account, serial)


def list_licenses(
    store: Store,
    caller: Principal,
    *,
    customer: str | None,
    status: str | None,
    product: str | None,
    cursor: str | None,
    limit: int,
) -> LicenseList:
    """One page of the account's licenses by serial, filtered (see
    ``tenure.service.licensing.list_licenses``)."""
    return licensing.list_licenses(
        store,
        caller.account,
        customer=customer,
        status=status,
        product=product,
        cursor=cursor,
        limit=limit,
    )


def license_history(store: Store, caller: Principal, serial: str) -> LicenseHistory:
    """The license's ledger events in order; ``NotFound`` if unknown."""
    return licensing.license_history(store, caller.account, serial)


def license_by_legacy_id(store: Store, caller: Principal, system: str, legacy_id: str) -> License:
    """The license that ``legacy_id`` of ``system`` was imported as; ``NotFound`` if
    none was."""
    serial = licensing.serial_by_legacy_id(store, caller.account, system, legacy_id)
    return licensing.get_license(store, caller.account, serial)


# ---------------------------------------------------------------- licenses: writes


def issue_license(
    submit: Submit,
    store: Store,
    license_keys: LicenseKeys,
    caller: Principal,
    order: IssueLicense,
    idempotency_key: str | None = None,
) -> IssuedLicense:
    """Issue ``order`` → the license with its key and whether this request created
    it (the serial derives from product, customer and order_ref: the same order again
    is the same license and key; on another plan a ``Conflict``). ``NotFound`` (field
    ``customer``) for an unknown customer, before anything is submitted."""
    licensing.get_customer(store, caller.account, order.customer)
    outcome = _submit(submit, caller, order, None, idempotency_key)
    serial = outcome.result["serial"]
    view = licensing.get_license(store, caller.account, serial)
    key = license_keys.key(caller.account, serial)
    return {**view, "key": key, "created": bool(outcome.result["created"])}


def change_license(
    submit: Submit,
    store: Store,
    caller: Principal,
    serial: str,
    command: Command,
    reason: str | None,
    idempotency_key: str | None = None,
) -> License:
    """Append ``command`` (a change of license ``serial``, with ``reason``) → the
    license as it is after. The command's refusal (``NotFound``, ``Conflict``, ...)
    is raised, audited by the writer."""
    _submit(submit, caller, command, reason, idempotency_key)
    return licensing.get_license(store, caller.account, serial)


def renew_license(
    submit: Submit,
    store: Store,
    caller: Principal,
    serial: str,
    duration: str | None,
    reason: str | None,
    idempotency_key: str | None = None,
) -> License:
    """Extend the expiry by ``duration`` (None: the plan's) → the updated license."""
    command = RenewLicense(serial, duration)
    return change_license(submit, store, caller, serial, command, reason, idempotency_key)


def suspend_license(
    submit: Submit,
    store: Store,
    caller: Principal,
    serial: str,
    reason: str,
    idempotency_key: str | None = None,
) -> License:
    """Suspend → the updated license; ``Conflict`` if not active."""
    command = SuspendLicense(serial)
    return change_license(submit, store, caller, serial, command, reason, idempotency_key)


def reinstate_license(
    submit: Submit,
    store: Store,
    caller: Principal,
    serial: str,
    reason: str | None,
    idempotency_key: str | None = None,
) -> License:
    """Reinstate a suspended license → the updated license; ``Conflict`` if not
    suspended."""
    command = ReinstateLicense(serial)
    return change_license(submit, store, caller, serial, command, reason, idempotency_key)


def revoke_license(
    submit: Submit,
    store: Store,
    settings: Settings,
    caller: Principal,
    serial: str,
    reason: str,
    idempotency_key: str | None = None,
) -> License | ApprovalPending:
    """Revoke (terminal) → the updated license; or, when that would cross the
    revocation threshold (the two-person rule of docs/approvals.md:
    ``approvals.revoke_gated``), request a second principal's approval of
    ``license.revoke`` → the approval (the idempotency key is not looked at then)."""
    if approvals.revoke_gated(store, settings, caller.account, serial, datetime.now(UTC)):
        payload = {"serials": [serial]}
        return request_approval(submit, settings, caller, "license.revoke", serial, payload, reason)
    command = RevokeLicense(serial)
    return change_license(submit, store, caller, serial, command, reason, idempotency_key)


def change_plan(
    submit: Submit,
    store: Store,
    caller: Principal,
    serial: str,
    plan: str,
    plan_version: int | None,
    reason: str | None,
    idempotency_key: str | None = None,
) -> License:
    """Move to ``plan`` at ``plan_version`` (None: its latest) → the updated license."""
    command = ChangePlan(serial, plan, plan_version)
    return change_license(submit, store, caller, serial, command, reason, idempotency_key)


def override_entitlement(
    submit: Submit,
    store: Store,
    caller: Principal,
    serial: str,
    entitlement: str,
    value: EntitlementValue | None,
    reason: str,
    idempotency_key: str | None = None,
) -> License:
    """Set ``entitlement`` to ``value`` (None removes the override) → the updated
    license. ``InvalidInput`` (field ``value``) for a value of the wrong kind for the
    entitlement, or an integer above ``MAX_INT``."""
    if value is not None:
        try:
            check_entitlement_value(entitlement, value, "value")
        except MalformedEvent as exc:
            raise InvalidInput(exc.message, field="value") from None
        if not isinstance(value, bool) and value > MAX_INT:
            raise InvalidInput(f"value must be at most {MAX_INT}", field="value")
    command = OverrideEntitlement(serial, entitlement, value)
    return change_license(submit, store, caller, serial, command, reason, idempotency_key)


def transfer_license(
    submit: Submit,
    store: Store,
    caller: Principal,
    serial: str,
    customer: str,
    reason: str | None,
    idempotency_key: str | None = None,
) -> License:
    """Transfer to ``customer`` → the updated license; ``NotFound`` (field
    ``customer``) for an unknown customer, before anything is submitted."""
    licensing.get_customer(store, caller.account, customer)
    command = TransferLicense(serial, customer)
    return change_license(submit, store, caller, serial, command, reason, idempotency_key)
