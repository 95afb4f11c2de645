"""Read side of licensing: licenses, their history, customers and products.

Each function runs in one read transaction, so what it returns is one consistent
snapshot of the projection. License views never carry the key hash, and their
``status`` is the status at the time of reading (``expired`` and ``in_grace`` are
derived from the clock, see ``tenure.domain.decisions.license_status``).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Literal

import orjson
from pydantic import Field
from typing_extensions import TypedDict

from tenure.domain.answers import NonNegative, closed
from tenure.domain.commands import Command
from tenure.domain.decisions import license_status
from tenure.domain.events import Actor, EventJson
from tenure.domain.state import Row
from tenure.domain.values import Code, CustomerId, EntitlementKey, EntitlementValue, Serial, Time
from tenure.errors import InvalidInput, NotFound
from tenure.service.apikeys import Principal
from tenure.service.ledger import Submission
from tenure.store.licenses import LicenseFilter
from tenure.store.unit import Projection, Store

MAX_PAGE = 200
STATUSES = ("active", "in_grace", "expired", "suspended", "revoked")
_STORED_FOR = {
    "active": ("active",),
    "in_grace": ("active",),
    "expired": ("active",),
    "suspended": ("suspended",),
    "revoked": ("revoked",),
}
_SCAN_CHUNK = 500
"""Rows read per query while filtering on a time-derived status."""

Clock = Callable[[], datetime]

Entitlements = dict[EntitlementKey, EntitlementValue]
LicenseStatus = Literal["active", "in_grace", "expired", "suspended", "revoked"]


# ---------------------------------------------------------------- the answers


@closed
class License(TypedDict):
    """A license without its key hash, its status at the time of reading."""

    serial: Serial
    product: Code
    customer: CustomerId
    plan: Code
    plan_version: Annotated[int, Field(ge=1)]
    order_ref: str
    status: LicenseStatus
    issued_at: Time
    expires_at: Annotated[Time | None, Field(description="null: perpetual")]
    overrides: Entitlements
    grace_ends_at: Time | None


@closed
class IssuedLicense(License):
    """The license, its key (shown to issuers on every issue of the same order) and
    whether this request created it."""

    key: str
    created: bool


@closed
class LicenseList(TypedDict):
    """One page of licenses (``list_licenses``)."""

    licenses: list[License]
    next_cursor: Annotated[
        str | None, Field(description="pass as cursor for the next page; null last")
    ]


@closed
class LicenseEvent(TypedDict):
    seq: NonNegative
    event: EventJson


@closed
class LicenseHistory(TypedDict):
    """The events about a license (``license_history``)."""

    events: list[LicenseEvent]


@closed
class PlanVersion(TypedDict):
    """The latest version of a plan (a ``plan_versions`` row without plan and product)."""

    code: Code
    version: Annotated[int, Field(ge=1)]
    entitlements: Entitlements
    core: list[EntitlementKey]
    duration: Annotated[str | None, Field(description="null: perpetual")]
    grace: str | None
    offline_token_ttl: str
    activation: Literal["floating", "node-locked"]


@closed
class Product(TypedDict):
    code: Code
    name: str
    features: list[Code]
    plans: list[PlanVersion]


@closed
class ProductList(TypedDict):
    """The products (``list_products``)."""

    products: list[Product]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class _PlanVersions:
    """Plan version rows read once per transaction (a license's grace comes from them)."""

    def __init__(self, projection: Projection, account: str) -> None:
        self._projection, self._account = projection, account
        self._rows: dict[tuple[str, int], Row | None] = {}

    def get(self, plan: str, version: int) -> Row | None:
        key = (plan, version)
        if key not in self._rows:
            self._rows[key] = self._projection.row(self._account, "plan_versions", key)
        return self._rows[key]


def _public(row: Row, versions: _PlanVersions, now: datetime) -> License:
    status = license_status(row, versions.get(row["plan"], row["plan_version"]), now)
    return {
        "serial": row["serial"],
        "product": row["product"],
        "customer": row["customer"],
        "plan": row["plan"],
        "plan_version": row["plan_version"],
        "order_ref": row["order_ref"],
        "status": status.status,
        "issued_at": row["issued_at"],
        "expires_at": row["expires_at"],
        "overrides": row["overrides"],
        "grace_ends_at": status.grace_ends_at,
    }


def _license_row(projection: Projection, account: str, serial: str) -> Row:
    row = projection.row(account, "licenses", (serial,))
    if row is None:
        raise NotFound(f"license {serial} not found")
    return row


def get_license(store: Store, account: str, serial: str, clock: Clock = _utc_now) -> License:
    """The public view of license ``serial``; raises ``NotFound`` if it does not exist."""
    with store.read() as tx:
        row = _license_row(tx.projection, account, serial)
        return _public(row, _PlanVersions(tx.projection, account), clock())


def encode_cursor(serial: str) -> str:
    """The opaque cursor that continues a listing after ``serial``."""
    return base64.urlsafe_b64encode(serial.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The serial a cursor continues after; ``InvalidInput`` (field ``cursor``) if malformed."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        serial = base64.urlsafe_b64decode(padded.encode("ascii")).decode("utf-8")
    except (UnicodeError, ValueError, binascii.Error):
        serial = ""
    # The decoder skips characters outside the alphabet: only a round trip proves the
    # cursor is one this service wrote.
    if not serial or encode_cursor(serial) != cursor:
        raise InvalidInput("cursor is not one this service returned", field="cursor")
    return serial


def list_licenses(
    store: Store,
    account: str,
    customer: str | None = None,
    status: str | None = None,
    product: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
    clock: Clock = _utc_now,
) -> LicenseList:
    """One page of licenses ordered by serial: ``{"licenses": [...], "next_cursor"}``.

    ``next_cursor`` is None on the last page. ``status`` filters on the status at
    the time of reading. Raises ``InvalidInput`` for a limit outside 1..200, an
    unknown status or a malformed cursor.
    """
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}", field="limit")
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(STATUSES)}", field="status")
    after = decode_cursor(cursor) if cursor is not None else None
    stored = _STORED_FOR[status] if status is not None else None
    now = clock()
    # Stored filters are exact; a time-derived status is filtered here, in chunks.
    chunk_size = limit + 1 if status in (None, "suspended", "revoked") else _SCAN_CHUNK
    found: list[License] = []
    which = LicenseFilter(customer, product, stored)
    with store.read() as tx:
        versions = _PlanVersions(tx.projection, account)
        while len(found) <= limit:
            chunk = tx.licenses.page(account, which, after, chunk_size)
            for row in chunk:
                view = _public(row, versions, now)
                if status is None or view["status"] == status:
                    found.append(view)
                    if len(found) > limit:
                        break
            if len(chunk) < chunk_size:
                break
            after = chunk[-1]["serial"]
    page = found[:limit]
    more = len(found) > limit
    return {"licenses": page, "next_cursor": encode_cursor(page[-1]["serial"]) if more else None}


def license_history(store: Store, account: str, serial: str) -> LicenseHistory:
    """The events about license ``serial`` in ledger order (its lifecycle, its
    activations, its revoked tokens): ``{"events": [{"seq", "event"}]}``; raises
    ``NotFound`` if the license does not exist."""
    with store.read() as tx:
        _license_row(tx.projection, account, serial)
        leaves = tx.ledger.events_about(account, serial)
    return {"events": [{"seq": seq, "event": orjson.loads(leaf)} for seq, leaf in leaves]}


def customer_view(row: Row) -> dict[str, str | None]:
    """The public shape of a customer row."""
    return {
        "id": row["customer"],
        "name": row["name"],
        "email": row["email"],
        "external_id": row["external_id"],
    }


def get_customer(store: Store, account: str, customer: str) -> dict[str, str | None]:
    """Customer ``customer``; raises ``NotFound`` (field ``customer``) if absent."""
    with store.read() as tx:
        row = tx.projection.row(account, "customers", (customer,))
    if row is None:
        raise NotFound(f"customer {customer} not found", field="customer")
    return customer_view(row)


def list_products(store: Store, account: str) -> ProductList:
    """Products with their features and the latest version of each of their plans:
    ``{"products": [{"code", "name", "features", "plans": [...]}]}``, by code."""
    with store.read() as tx:
        products = tx.projection.rows(account, "products")
        plans = tx.projection.rows(account, "plans")
        latest = {
            plan["plan"]: tx.projection.row(
                account, "plan_versions", (plan["plan"], plan["latest_version"])
            )
            for plan in plans
        }
    by_product: dict[str, list[PlanVersion]] = {}
    for plan in plans:
        version = latest[plan["plan"]]
        if version is None:
            continue
        by_product.setdefault(plan["product"], []).append(
            {
                "code": plan["plan"],
                "version": version["version"],
                "entitlements": version["entitlements"],
                "core": version["core"],
                "duration": version["duration"],
                "grace": version["grace"],
                "offline_token_ttl": version["offline_token_ttl"],
                "activation": version["activation"],
            }
        )
    return {
        "products": [
            {
                "code": p["product"],
                "name": p["name"],
                "features": p["features"],
                "plans": by_product.get(p["product"], []),
            }
            for p in products
        ]
    }


def serial_by_legacy_id(store: Store, account: str, system: str, legacy_id: str) -> str:
    """The serial that ``legacy_id`` of ``system`` was imported as (docs/import.md);
    ``NotFound`` if none."""
    with store.read() as tx:
        serial = tx.licenses.serial_by_legacy_id(account, system, legacy_id)
    if serial is None:
        raise NotFound(f"no license was imported from {system} as {legacy_id!r}")
    return serial


def change_submission(
    caller: Principal, command: Command, reason: str | None, idempotency_key: str | None = None
) -> Submission:
    """The submission of a license change (``command``, with ``reason``) by
    ``caller`` (an API key, or the local CLI's operator): what the licensing use cases
    (``tenure.service.handlers.licensing``) send to the ledger writer, which audits it."""
    actor = Actor(caller.id, caller.role, caller.auth)
    return Submission(
        caller.account, command, actor, reason=reason, idempotency_key=idempotency_key
    )
