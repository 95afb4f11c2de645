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
import sqlalchemy as sa

from tenure.domain.decisions import license_status
from tenure.domain.projector import effective_entitlements
from tenure.domain.timefmt import format_time
from tenure.durability import drill
from tenure.durability.shipping import Shipper
from tenure.ledger.merkle import inclusion_proof
from tenure.ops.slo import Objectives, slo_report
from tenure.service import audit, licensing, queries
from tenure.service.activations import license_activations
from tenure.service.context import ServiceContext
from tenure.service.personal import PersonalData
from tenure.store import sql
from tenure.store import tables as t
from tenure.store.engine import read_transaction
from tenure.store.unit import SqlStore

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


def license_counts(engine: sa.Engine, account: str, now: datetime) -> dict[str, int]:
    """Licenses by status at ``now`` (``expired`` and ``in_grace`` derived from the
    clock, as ``tenure.service.licensing`` derives them)."""
    lic = t.projection["licenses"]
    counts = dict.fromkeys(licensing.STATUSES, 0)
    stamp = format_time(now)
    with read_transaction(engine) as conn:
        grouped = conn.execute(
            sa.select(lic.c.status, sa.func.count())
            .where(lic.c.account == account)
            .group_by(lic.c.status)
        ).all()
        for status, count in grouped:
            counts[str(status)] = counts.get(str(status), 0) + int(count)
        # Only active licenses past their expiry can have a derived status.
        due = conn.execute(
            sa.select(lic.c.serial).where(
                lic.c.account == account, lic.c.status == "active", lic.c.expires_at <= stamp
            )
        ).all()
        for (serial,) in due:
            row = sql.read_row(conn, account, "licenses", (serial,))
            if row is None:
                continue
            plan = sql.read_row(conn, account, "plan_versions", (row["plan"], row["plan_version"]))
            derived = license_status(row, plan, now).status
            if derived != "active":
                counts["active"] -= 1
                counts[derived] = counts.get(derived, 0) + 1
    return counts


def decision_counts(engine: sa.Engine, account: str, now: datetime) -> dict[str, int]:
    """Checks decided in the last 24 hours, from the audit log: allowed and denied."""
    log = t.audit_log.c
    since = format_time(now - DECISION_WINDOW)
    with read_transaction(engine) as conn:
        rows = conn.execute(
            sa.select(log.outcome, sa.func.count())
            .where(log.account == account, log.action == "check", log.time >= since)
            .group_by(log.outcome)
        ).all()
    counts = {"allowed": 0, "denied": 0}
    counts.update({str(outcome): int(count) for outcome, count in rows})
    return counts


def ledger_status(engine: sa.Engine, account: str, now: datetime) -> dict[str, Any]:
    """Ledger size, and the latest signed checkpoint's size and age."""
    with read_transaction(engine) as conn:
        head = sql.read_head(conn, account)
        stored = sql.read_checkpoint(conn, account)
    signed = parse_time(stored.signed_at) if stored else None
    return {
        "size": head.size if head else 0,
        "checkpoint_size": stored.size if stored else None,
        "checkpoint_signed_at": stored.signed_at if stored else None,
        "checkpoint_age": age_text(signed, now),
        "checkpoint_root": _b64(stored.root) if stored else None,
    }


def durability_status(
    engine: sa.Engine, account: str, shipper: Shipper, sites: list[str], now: datetime
) -> dict[str, Any]:
    """Sites, shipping lag and last success (``Shipper.status``, as
    ``GET /v1/durability``), the newest snapshot, and the latest restore drill (as
    ``GET /v1/drills/latest``)."""
    shipping = shipper.status()
    shipped = parse_time(shipping["last_shipped_at"])
    report = drill.latest(SqlStore(engine), account)
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
    engine: sa.Engine, personal: PersonalData | None, account: str, serial: str, now: datetime
) -> dict[str, Any]:
    """A license with its customer, effective entitlements and activations. Raises
    ``NotFound`` for an unknown serial."""
    view = licensing.get_license(SqlStore(engine), account, serial, clock=lambda: now)
    with read_transaction(engine) as conn:
        row = sql.read_row(conn, account, "licenses", (serial,))
        plan = sql.read_row(conn, account, "plan_versions", (view["plan"], view["plan_version"]))
    effective = effective_entitlements(plan, row) if plan and row else dict(view["overrides"])
    customer = personal_customer(engine, personal, account, view["customer"])
    activations = license_activations(engine, account, serial, now)["activations"]
    return {
        "license": view,
        "customer": customer,
        "entitlements": sorted(effective.items()),
        "core": plan["core"] if plan else [],
        "activations": activations,
    }


def personal_customer(
    engine: sa.Engine, personal: PersonalData | None, account: str, customer: str
) -> dict[str, Any]:
    """A customer the way the API reads it: personal fields opened when decryptable."""
    if personal is not None:
        return personal.read_customer(engine, account, customer)
    return {**licensing.get_customer(SqlStore(engine), account, customer), "erased": False}


def license_history_with_proofs(engine: sa.Engine, account: str, serial: str) -> dict[str, Any]:
    """The license's events, each with its exact leaf bytes (base64) and, for those
    the latest signed checkpoint covers, the RFC 9162 inclusion proof in that tree:
    everything a browser needs to verify them against the checkpoint itself.

    One read transaction, so the proofs and the checkpoint come from one snapshot.
    Raises ``NotFound`` for an unknown license."""
    licensing.license_history(SqlStore(engine), account, serial)  # NotFound for an unknown serial
    with read_transaction(engine) as conn:
        leaves = sql.events_about(conn, account, serial)
        stored = sql.read_checkpoint(conn, account)
        keys = sql.verifier_keys(conn, account)
        reader = sql.NodeReader(conn, account)
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
    engine: sa.Engine,
    personal: PersonalData | None,
    account: str,
    after: str | None,
    search: str | None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Customers by id after ``after`` (ids starting with ``search`` when given),
    each read as the API reads it; and the id to continue after, or None."""
    table = t.projection["customers"]
    query = sa.select(table.c.customer).where(table.c.account == account)
    if after:
        query = query.where(table.c.customer > after)
    if search:
        query = query.where(table.c.customer.startswith(search, autoescape=True))
    with read_transaction(engine) as conn:
        ids = [
            str(r[0])
            for r in conn.execute(query.order_by(table.c.customer).limit(CUSTOMERS_PAGE + 1))
        ]
    more = len(ids) > CUSTOMERS_PAGE
    ids = ids[:CUSTOMERS_PAGE]
    shown = [personal_customer(engine, personal, account, customer) for customer in ids]
    return shown, (ids[-1] if more and ids else None)


def catalog(engine: sa.Engine, account: str) -> list[dict[str, Any]]:
    """Products, each with its plans, each with every version and its entitlements."""
    with read_transaction(engine) as conn:
        products = sql.projection_rows(conn, account, "products")
        plans = sql.projection_rows(conn, account, "plans")
        versions = sql.projection_rows(conn, account, "plan_versions")
        retired = {r["plan"] for r in sql.projection_rows(conn, account, "retired_plans")}
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


def audit_entries(engine: sa.Engine, account: str, limit: int = 100) -> list[dict[str, Any]]:
    """The newest ``limit`` audit entries, newest first."""
    with read_transaction(engine) as conn:
        entries, _ = audit.page(conn, account, limit=limit, newest_first=True)
    return entries


def latest_checkpoint_note(engine: sa.Engine, account: str) -> str | None:
    """The latest signed checkpoint note, or None before the first."""
    stored = queries.latest_checkpoint(SqlStore(engine), account)
    return stored.note if stored else None
