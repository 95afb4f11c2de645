"""``/readyz``: may this process take traffic? (docs/observability.md, "Health").

Each check says ``{name, ok, required, detail}``; the process is ready when every
required check passes. ``/healthz`` (alive) checks nothing: it answers or it does not.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa

from tenure.durability.shipping import Shipper
from tenure.service.context import ServiceContext
from tenure.service.ledger import Ledger
from tenure.store import sql
from tenure.store.engine import read_transaction
from tenure.store.migrations import current_revision


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    required: bool = True

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def database(runtime: ServiceContext, head: str | None) -> Check:
    """The database answers and its schema is this release's."""
    try:
        revision = current_revision(runtime.engine)
    except sa.exc.SQLAlchemyError as exc:
        return Check("database", False, f"does not answer: {type(exc).__name__}")
    if revision != head:
        return Check("database", False, f"schema {revision}, this release needs {head}")
    return Check("database", True, f"schema {revision}")


def ledger_writer(ledger: Ledger) -> Check:
    """The ledger writer thread runs (appends and audit entries need it)."""
    if ledger.running:
        return Check("ledger_writer", True, "running")
    return Check("ledger_writer", False, "the ledger writer has stopped")


def signing_key(runtime: ServiceContext) -> Check:
    """The ledger key store gives the default account's signer."""
    account = runtime.settings.default_account
    try:
        origin, _ = runtime.ledger_signer(account)
    except Exception as exc:  # any key store failure: the check names it
        return Check("signing_key", False, f"{type(exc).__name__}: {exc}")
    return Check("signing_key", True, origin)


def sidecar(runtime: ServiceContext) -> Check:
    """The last checkpoint this host signed (the sidecar) is not ahead of the store:
    if it is, the writer refuses to append until events are restored."""
    account = runtime.settings.default_account
    if runtime.sidecar is None:
        return Check("sidecar", True, "none")
    try:
        signed = runtime.sidecar.read(account)
        with read_transaction(runtime.engine) as conn:
            head = sql.read_head(conn, account)
    except Exception as exc:  # a sidecar or database failure: the check names it
        return Check("sidecar", False, f"{type(exc).__name__}: {exc}")
    size = head.size if head else 0
    if signed is not None and signed.size > size:
        return Check("sidecar", False, f"checkpoint {signed.size} signed, store holds {size}")
    return Check("sidecar", True, f"store {size}, signed {signed.size if signed else 0}")


def sites(shipper: Shipper, urls: list[str], interval: float) -> Check:
    """The sites took the last shipping pass (not required: checks go on without
    them; the RPO suffers)."""
    if not urls:
        return Check("sites", True, "none configured", required=False)
    if not shipper.running:
        return Check("sites", True, "another process ships", required=False)
    last = shipper.last_success
    if last is None or time.time() - last > max(3 * interval, 30.0):
        return Check("sites", False, "no recent successful shipping pass", required=False)
    return Check("sites", True, f"shipped {time.time() - last:.0f}s ago", required=False)


def readiness(state: Any, head: str | None) -> list[Check]:
    """Every readiness check against the app's ``state`` (``runtime``, ``ledger``,
    ``shipper``)."""
    runtime: ServiceContext = state.runtime
    checks = [database(runtime, head), ledger_writer(state.ledger), signing_key(runtime)]
    checks.append(sidecar(runtime))
    s = runtime.settings
    checks.append(sites(state.shipper, s.site_urls(), s.ship_interval_seconds))
    return checks


def ready(checks: list[Check]) -> bool:
    """Whether every required check passed."""
    return all(c.ok for c in checks if c.required)
