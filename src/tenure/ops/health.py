"""``/readyz``: may this process take traffic? (docs/observability.md, "Health").

Each check says ``{name, ok, detail, required}``; the process is ready when every
required check passes. ``/healthz`` (alive) checks nothing: it answers or it does not.
"""

from __future__ import annotations

import time

from tenure import __version__
from tenure.durability.shipping import Shipper
from tenure.ops.views import Check, Readiness
from tenure.service.context import ServiceContext
from tenure.service.ledger import Ledger
from tenure.store.failures import database_errors
from tenure.store.unit import Store


def database(store: Store, head: str | None) -> Check:
    """The database answers and its schema is this release's."""
    try:
        with store.read() as tx:
            revision = tx.gauges.schema_revision()
    except database_errors() as exc:
        return Check(name="database", ok=False, detail=f"does not answer: {type(exc).__name__}")
    if revision != head:
        detail = f"schema {revision}, this release needs {head}"
        return Check(name="database", ok=False, detail=detail)
    return Check(name="database", ok=True, detail=f"schema {revision}")


def ledger_writer(ledger: Ledger) -> Check:
    """The ledger writer thread runs (appends and audit entries need it)."""
    if ledger.running:
        return Check(name="ledger_writer", ok=True, detail="running")
    return Check(name="ledger_writer", ok=False, detail="the ledger writer has stopped")


def signing_key(runtime: ServiceContext) -> Check:
    """The ledger key store gives the default account's signer."""
    account = runtime.settings.default_account
    try:
        origin, _ = runtime.ledger_signer(account)
    except Exception as exc:  # any key store failure: the check names it
        return Check(name="signing_key", ok=False, detail=f"{type(exc).__name__}: {exc}")
    return Check(name="signing_key", ok=True, detail=origin)


def sidecar(runtime: ServiceContext) -> Check:
    """The last checkpoint this host signed (the sidecar) is not ahead of the store:
    if it is, the writer refuses to append until events are restored."""
    account = runtime.settings.default_account
    if runtime.sidecar is None:
        return Check(name="sidecar", ok=True, detail="none")
    try:
        signed = runtime.sidecar.read(account)
        with runtime.store.read() as tx:
            head = tx.ledger.head(account)
    except Exception as exc:  # a sidecar or database failure: the check names it
        return Check(name="sidecar", ok=False, detail=f"{type(exc).__name__}: {exc}")
    size = head.size if head else 0
    if signed is not None and signed.size > size:
        detail = f"checkpoint {signed.size} signed, store holds {size}"
        return Check(name="sidecar", ok=False, detail=detail)
    detail = f"store {size}, signed {signed.size if signed else 0}"
    return Check(name="sidecar", ok=True, detail=detail)


def state(runtime: ServiceContext) -> Check:
    """Every account's stored state proves against its signed ledger (docs/state.md);
    an account that does not is refused checks and appends."""
    problems = runtime.state_guard.problems()
    if not problems:
        return Check(name="state", ok=True, detail="proven")
    named = "; ".join(f"{account}: {problem}" for account, problem in sorted(problems.items()))
    return Check(name="state", ok=False, detail=f"unproven: {named}")


def sites(shipper: Shipper, urls: list[str], interval: float) -> Check:
    """The sites took the last shipping pass (not required: checks go on without
    them; the RPO suffers)."""
    if not urls:
        return Check(name="sites", ok=True, detail="none configured", required=False)
    if not shipper.running:
        return Check(name="sites", ok=True, detail="another process ships", required=False)
    last = shipper.last_success
    if last is None or time.time() - last > max(3 * interval, 30.0):
        detail = "no recent successful shipping pass"
        return Check(name="sites", ok=False, detail=detail, required=False)
    detail = f"shipped {time.time() - last:.0f}s ago"
    return Check(name="sites", ok=True, detail=detail, required=False)


def ready(checks: list[Check]) -> bool:
    """Whether every required check passed."""
    return all(c.ok for c in checks if c.required)


def readiness(
    runtime: ServiceContext, ledger: Ledger, shipper: Shipper, head: str | None
) -> Readiness:
    """Every readiness check of this process, ready or not (``head``: the schema
    revision this release needs)."""
    s = runtime.settings
    checks = [database(runtime.store, head), ledger_writer(ledger), signing_key(runtime)]
    checks.append(sidecar(runtime))
    checks.append(state(runtime))
    checks.append(sites(shipper, s.site_urls(), s.ship_interval_seconds))
    ok = ready(checks)
    database_check = checks[0]
    return Readiness(
        status="ready" if ok else "unavailable",
        schema_=database_check.detail.removeprefix("schema ") if database_check.ok else None,
        version=__version__,
        checks=checks,
    )
