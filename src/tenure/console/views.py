"""What the console pages show, read from the store in one transaction per panel.

Functions here return plain dicts for the templates; they never render or decide
who may see what (``tenure.console.routes`` does). Panels of services other
engineers own (drift, SLOs, notices, alerts) are called as they are.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from tenure.domain.decisions import effective_entitlements, license_status
from tenure.domain.timefmt import format_time
from tenure.durability import drill
from tenure.durability.shipping import Shipper
from tenure.errors import TenureError
from tenure.ledger.merkle import inclusion_proof
from tenure.ops.slo import Objectives, slo_report
from tenure.service import audit, checks, licensing
from tenure.service.activations import license_activations
from tenure.service.context import ServiceContext
from tenure.service.ledger import Ledger, SignRequest
from tenure.store.unit import Store

DECISION_WINDOW = timedelta(hours=24)
CUSTOMERS_PAGE = 25


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def parse_time(text: str | None) -> datetime | None:
    """An RFC 3339 UTC time as the store writes it; None for None or unparsable."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def age_text(then: datetime | None, now: datetime) -> str:
    """``"3 s"``, ``"4 min"``, ``"2 h"``, ``"5 d"`` ago; ``"never"`` for None."""
    if then is None:
        return "never"
    seconds = max(0, int((now - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def short_time(text: str | None) -> str:
    """``2026-01-01 07:08:41 UTC`` for a stored RFC 3339 time; ``—`` for None."""
    moment = parse_time(text)
    if moment is None:
        return text or "\u2014"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def short_day(text: str | None) -> str:
    """``2026-01-01`` for a stored RFC 3339 time; ``—`` for None."""
    moment = parse_time(text)
    if moment is None:
        return text or "\u2014"
    return moment.astimezone(UTC).strftime("%Y-%m-%d")


# ---------------------------------------------------------------- overview


def license_counts(store: Store, account: str, now: datetime) -> dict[str, int]:
    """Licenses by status at ``now`` (``expired`` and ``in_grace`` derived from the
    clock, as ``tenure.service.licensing`` derives them)."""
    counts = dict.fromkeys(licensing.STATUSES, 0)
    with store.read() as tx:
        for status, count in tx.listings.license_statuses(account).items():
            counts[status] = counts.get(status, 0) + count
        # Only active licenses past their expiry can have a derived status.
        for serial in tx.listings.expired_active(account, format_time(now)):
            row = tx.projection.row(account, "licenses", (serial,))
            if row is None:
                continue
            plan = tx.projection.row(account, "plan_versions", (row["plan"], row["plan_version"]))
            derived = license_status(row, plan, now).status
            if derived != "active":
                counts["active"] -= 1
                counts[derived] = counts.get(derived, 0) + 1
    return counts


def decision_counts(store: Store, account: str, now: datetime) -> dict[str, int]:
    """Checks decided in the last 24 hours, from the audit log: allowed and denied."""
    since = format_time(now - DECISION_WINDOW)
    with store.read() as tx:
        found = tx.audit.outcomes(account, "check", since)
    return {"allowed": 0, "denied": 0, **found}


def ledger_status(store: Store, account: str, now: datetime) -> dict[str, Any]:
    """Ledger size, and the latest signed checkpoint's size and age."""
    with store.read() as tx:
        head = tx.ledger.head(account)
        stored = tx.ledger.checkpoint(account)
    signed = parse_time(stored.signed_at) if stored else None
    return {
        "size": head.size if head else 0,
        "checkpoint_size": stored.size if stored else None,
        "checkpoint_signed_at": stored.signed_at if stored else None,
        "checkpoint_age": age_text(signed, now),
        "checkpoint_root": _b64(stored.root) if stored else None,
    }


def durability_status(
    runtime: ServiceContext, account: str, shipper: Shipper, sites: list[str], now: datetime
) -> dict[str, Any]:
    """Sites, shipping lag and last success (``Shipper.status``, as
    ``GET /v1/durability``), the newest snapshot, and the latest restore drill (as
    ``GET /v1/drills/latest``)."""
    shipping = shipper.status()
    shipped = parse_time(shipping["last_shipped_at"])
    report = drill.latest(runtime.store, account)
    snapshots = shipper.snapshots
    # The newest epoch's namespace: "<account>", then "<account>/epoch-<n>".
    ours = [where for where in snapshots if where.split("/")[0] == account]
    snapshot = snapshots[max(ours, key=lambda w: (len(w), w))] if ours else None
    return {
        "sites": sites,
        **shipping,
        "shipped_age": age_text(shipped, now),
        "snapshot_size": snapshot[0] if snapshot else None,
        "snapshot_age": age_text(now - timedelta(seconds=snapshot[1]), now) if snapshot else None,
        "drill": report.to_json() if report else None,
        "drill_age": age_text(parse_time(report.at), now) if report else "never",
    }


def slo_panel(runtime: ServiceContext, account: str, now: datetime) -> dict[str, Any]:
    """The SLO report (``tenure.ops.slo.slo_report``) as a dict."""
    objectives = Objectives.from_settings(runtime.settings)
    return slo_report(runtime.store, account, now, objectives).to_json()


# ---------------------------------------------------------------- licenses


def license_detail(
    runtime: ServiceContext, account: str, serial: str, now: datetime
) -> dict[str, Any]:
    """A license with its customer, effective entitlements and activations. Raises
    ``NotFound`` for an unknown serial."""
    view = licensing.get_license(runtime.store, account, serial, clock=lambda: now)
    with runtime.store.read() as tx:
        row = tx.projection.row(account, "licenses", (serial,))
        plan = tx.projection.row(account, "plan_versions", (view["plan"], view["plan_version"]))
    effective = effective_entitlements(plan, row) if plan and row else dict(view["overrides"])
    customer = personal_customer(runtime, account, view["customer"])
    activations = license_activations(runtime.store, account, serial, now)["activations"]
    return {
        "license": view,
        "customer": customer,
        "entitlements": sorted(effective.items()),
        "core": plan["core"] if plan else [],
        "activations": activations,
    }


def personal_customer(runtime: ServiceContext, account: str, customer: str) -> dict[str, Any]:
    """A customer the way the API reads it: personal fields opened when decryptable."""
    if runtime.personal is not None:
        return dict(runtime.personal.read_customer(runtime.store, account, customer))
    return {**licensing.get_customer(runtime.store, account, customer), "erased": False}


def license_history_with_proofs(
    runtime: ServiceContext, account: str, serial: str
) -> dict[str, Any]:
    """The license's events, each with its exact leaf bytes (base64) and, for those
    the latest signed checkpoint covers, the RFC 9162 inclusion proof in that tree:
    everything a browser needs to verify them against the checkpoint itself.

    One read transaction, so the proofs and the checkpoint come from one snapshot.
    Raises ``NotFound`` for an unknown license."""
    # NotFound for an unknown serial:
    licensing.license_history(runtime.store, account, serial)
    with runtime.store.read() as tx:
        leaves = tx.ledger.events_about(account, serial)
        stored = tx.ledger.checkpoint(account)
        keys = tx.ledger.verifier_keys(account)
        reader = tx.ledger.nodes(account)
        size = stored.size if stored else 0
        events = []
        for seq, leaf in leaves:
            proof = [_b64(h) for h in inclusion_proof(seq, size, reader)] if seq < size else None
            events.append(
                {"seq": seq, "event": orjson.loads(leaf), "leaf_b64": _b64(leaf), "proof": proof}
            )
    return {
        "events": events,
        "checkpoint": {"size": size, "note": stored.note if stored else None},
        "verifier_keys": keys,
    }


# ---------------------------------------------------------------- customers, catalog, audit


def customers_page(
    runtime: ServiceContext, account: str, after: str | None, search: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """Customers by id after ``after`` (ids starting with ``search`` when given),
    each read as the API reads it; and the id to continue after, or None."""
    with runtime.store.read() as tx:
        ids = tx.listings.customer_ids(account, after, search, CUSTOMERS_PAGE + 1)
    more = len(ids) > CUSTOMERS_PAGE
    ids = ids[:CUSTOMERS_PAGE]
    shown = [personal_customer(runtime, account, customer) for customer in ids]
    return shown, (ids[-1] if more and ids else None)


def catalog(store: Store, account: str) -> list[dict[str, Any]]:
    """Products, each with its plans, each with every version and its entitlements."""
    with store.read() as tx:
        products = tx.projection.rows(account, "products")
        plans = tx.projection.rows(account, "plans")
        versions = tx.projection.rows(account, "plan_versions")
        retired = {r["plan"] for r in tx.projection.rows(account, "retired_plans")}
    by_plan: dict[str, list[dict[str, Any]]] = {}
    for version in versions:
        entitlements = sorted(version["entitlements"].items())
        by_plan.setdefault(version["plan"], []).append({**version, "entitlements": entitlements})
    shown = []
    for product in products:
        own = [
            {
                **plan,
                "retired": plan["plan"] in retired,
                "versions": sorted(by_plan.get(plan["plan"], []), key=lambda v: -v["version"]),
            }
            for plan in plans
            if plan["product"] == product["product"]
        ]
        shown.append({**product, "plans": own})
    return shown


def audit_entries(store: Store, account: str, limit: int = 100) -> list[audit.AuditEntryJson]:
    """The newest ``limit`` audit entries, newest first."""
    with store.read() as tx:
        entries, _ = audit.page(tx.audit, account, limit=limit, newest_first=True)
    return entries


def license_state_proof(
    runtime: ServiceContext, ledger: Ledger, account: str, serial: str
) -> dict[str, Any]:
    """``{"proof", "error"}``: the proof, under a signed state root, of the rows the
    license's effective entitlements come from (docs/state.md), for the browser to
    verify; or why there is none."""
    try:
        proof = checks.prove_license(
            runtime.store,
            account,
            serial,
            runtime.state_guard,
            lambda: ledger.execute(SignRequest(account)),
        )
    except TenureError as exc:
        return {"proof": None, "error": exc.message}
    return {"proof": proof, "error": None}


def latest_checkpoint_note(store: Store, account: str) -> str | None:
    """The latest signed checkpoint note, or None before the first."""
    with store.read() as tx:
        stored = tx.ledger.checkpoint(account)
    return stored.note if stored else None
