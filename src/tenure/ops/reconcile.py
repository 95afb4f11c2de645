"""The reconciler (docs/drift.md): deployment reports against the ledger state.

A pass reads every report of an account (``tx.deployments``) and the projection
tables it needs in a few set-based reads, classifies drift in memory (``classify``,
pure: no clock, no I/O), then replaces the account's open findings (``tx.drift``) in
one transaction — a finding that persists keeps its ``first_seen`` — and records
the pass. With ``correct``
it also appends corrective events through the ledger writer, each under an
idempotency key of its own, so a repeated pass never appends twice.
"""

from __future__ import annotations

import gc
import logging
import re
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric

from tenure.domain.activations import DeactivateDevice, RevokeToken, holds_seat
from tenure.domain.commands import Command
from tenure.domain.decisions import effective_entitlements, license_status
from tenure.domain.events import Actor
from tenure.domain.state import Row
from tenure.domain.timefmt import format_time, parse_time
from tenure.errors import InvalidInput, TenureError
from tenure.observability import metrics
from tenure.ops.deployments import device_of
from tenure.ops.jobs import account_job
from tenure.ops.scrape import Scrape, state_source
from tenure.ops.views import DriftFinding, DriftList, DriftPass, DriftPassSummary
from tenure.service.ledger import Ledger, Submission
from tenure.store.drift import StoredFinding, StoredPass
from tenure.store.unit import Store, Transaction
from tenure.workers import Worker

_log = logging.getLogger("tenure.reconcile")

KINDS = (
    "unknown_device",
    "over_seat",
    "entitlement_not_granted",
    "revoked_token",
    "expired_token",
    "stale_report",
    "version_skew",
)
GRANTING_STATUSES = frozenset({"active", "in_grace"})
TOKEN_REVOKING_STATUSES = frozenset({"revoked", "suspended"})
"""License statuses under which every token of the license counts as revoked."""
PASS_HISTORY = timedelta(days=30)
"""How long recorded passes are kept."""
RECONCILER = Actor("reconciler", "system", "internal")


@dataclass(frozen=True)
class DriftPolicy:
    """What counts as drift: report age, minimum versions; whether to correct."""

    stale_after: timedelta = timedelta(hours=1)
    min_product_version: str = ""
    min_sdk_version: str = ""
    correct: bool = False

    @classmethod
    def from_settings(cls, settings: Any) -> DriftPolicy:
        return cls(
            timedelta(minutes=settings.drift_stale_after_minutes),
            settings.drift_min_product_version,
            settings.drift_min_sdk_version,
            settings.reconcile_correct,
        )


@dataclass(frozen=True)
class Finding:
    """One drift: its kind, the deployment it was seen in, what it is about."""

    kind: str
    deployment: str
    subject: str
    detail: str
    serial: str | None = field(default=None, compare=False)
    """The license of a token finding (what a correction needs); not stored."""


@dataclass(frozen=True)
class LedgerState:
    """The projection rows a pass compares reports with."""

    licenses: dict[str, Row]
    plans: dict[tuple[str, int], Row]
    activations: dict[str, Row]
    seats: dict[str, dict[str, str | None]]
    revoked: dict[str, str]


def read_state(tx: Transaction, account: str) -> LedgerState:
    """The account's licenses, plan versions, activations, seats and revoked tokens:
    one read per table."""
    rows = {name: tx.projection.rows(account, name) for name in _STATE_TABLES}
    return LedgerState(
        {r["serial"]: r for r in rows["licenses"]},
        {(r["plan"], r["version"]): r for r in rows["plan_versions"]},
        {r["activation"]: r for r in rows["activations"]},
        {r["serial"]: r["holders"] for r in rows["license_seats"]},
        {r["jti"]: r["serial"] for r in rows["revoked_tokens"]},
    )


_STATE_TABLES = ("licenses", "plan_versions", "activations", "license_seats", "revoked_tokens")


# ---------------------------------------------------------------- classification (pure)


def version_key(version: str) -> tuple[int, ...]:
    """A version compared numerically by its dot-separated numbers (``1.10.0`` >
    ``1.9.2``); a build suffix after ``+`` and non-digits are ignored."""
    return tuple(int(n) for n in re.findall(r"\d+", version.split("+", 1)[0]))


class _Licenses:
    """Per-license answers, computed once per serial in a pass."""

    def __init__(self, state: LedgerState, now: datetime) -> None:
        self._state, self._now = state, now
        self._cache: dict[str, tuple[str, dict[str, bool | int]]] = {}

    def status_and_grants(self, serial: str) -> tuple[str, dict[str, bool | int]]:
        known = self._cache.get(serial)
        if known is None:
            row = self._state.licenses[serial]
            plan = self._state.plans.get((row["plan"], row["plan_version"]))
            status = license_status(row, plan, self._now).status
            grants = effective_entitlements(plan or {"entitlements": {}}, row)
            known = self._cache[serial] = (status, grants)
        return known


Reports = Sequence[Mapping[str, Any]]
"""Reports as ``StoredReport.as_mapping`` gives them: ``deployment``, ``product``,
``product_version``, ``sdk_version``, ``received_at``, ``activations``."""


def classify(
    account: str,
    reports: Reports,
    state: LedgerState,
    policy: DriftPolicy,
    now: datetime,
) -> list[Finding]:
    """Every drift of ``reports`` against ``state`` at ``now``, sorted; each rule is
    in docs/drift.md. A report entry of an unknown license is one
    ``unknown_device`` and nothing else."""
    found: set[Finding] = set()
    licenses = _Licenses(state, now)
    devices: dict[str, set[str]] = defaultdict(set)
    seen_in: dict[str, set[str]] = defaultdict(set)
    newest = _newest_versions(reports)
    for report in reports:
        found.update(_report_findings(report, newest, policy, now))
        deployment = report["deployment"]
        for entry in report["activations"]:
            device = device_of(account, entry)
            unknown = _unknown_device(entry, device, state)
            if unknown is not None:
                found.add(Finding("unknown_device", deployment, device, unknown))
            if entry["license"] not in state.licenses:
                continue
            devices[entry["license"]].add(device)
            seen_in[entry["license"]].add(deployment)
            found.update(_entry_findings(entry, deployment, licenses, state, now))
    found.update(_over_seat(devices, seen_in, licenses))
    return sorted(found, key=lambda f: (f.kind, f.deployment, f.subject))


def _unknown_device(entry: dict[str, Any], device: str, state: LedgerState) -> str | None:
    row = state.activations.get(device)
    if row is None or row["serial"] != entry["license"]:
        return f"license {entry['license']} has no activation {device}"
    if row["status"] != "active":
        return f"activation {device} was deactivated"
    expected = entry.get("fingerprint_hash")
    if expected is not None and expected != row["fingerprint_hash"]:
        return f"activation {device} belongs to another device"
    return None


def _entry_findings(
    entry: dict[str, Any],
    deployment: str,
    licenses: _Licenses,
    state: LedgerState,
    now: datetime,
) -> Iterator[Finding]:
    serial = entry["license"]
    status, grants = licenses.status_and_grants(serial)
    for key in entry.get("entitlements", ()):
        if key == "seats":
            continue
        if status not in GRANTING_STATUSES:
            detail = f"license is {status}"
        elif not grants.get(key):
            detail = f"license does not grant {key}"
        else:
            continue
        yield Finding("entitlement_not_granted", deployment, f"{serial}/{key}", detail)
    stamp = now.timestamp()
    for token in entry.get("tokens", ()):
        jti = token["jti"]
        if jti in state.revoked:
            yield Finding("revoked_token", deployment, jti, "token was revoked", serial)
        elif status in TOKEN_REVOKING_STATUSES:
            yield Finding("revoked_token", deployment, jti, f"license is {status}", serial)
        elif token["exp"] <= stamp:
            expired = format_time(datetime.fromtimestamp(token["exp"], UTC))
            yield Finding("expired_token", deployment, jti, f"token expired at {expired}", serial)


def _over_seat(
    devices: dict[str, set[str]], seen_in: dict[str, set[str]], licenses: _Licenses
) -> Iterator[Finding]:
    for serial, in_use in devices.items():
        seats = licenses.status_and_grants(serial)[1].get("seats")
        if seats is None or isinstance(seats, bool) or len(in_use) <= seats:
            continue
        where = sorted(seen_in[serial])
        detail = f"{len(in_use)} devices in use, {seats} seats; in {', '.join(where[:10])}"
        yield Finding("over_seat", where[0], serial, detail)


def _report_findings(
    report: Mapping[str, Any], newest: dict[str, str], policy: DriftPolicy, now: datetime
) -> Iterator[Finding]:
    deployment = report["deployment"]
    received = report["received_at"]
    if parse_time(received) < now - policy.stale_after:
        yield Finding("stale_report", deployment, deployment, f"last report at {received}")
    version = report["product_version"]
    latest = newest.get(report["product"], version)
    if policy.min_product_version and version_key(version) < version_key(
        policy.min_product_version
    ):
        detail = f"{report['product']} {version} is below {policy.min_product_version}"
        yield Finding("version_skew", deployment, "product_version", detail)
    elif version_key(version) < version_key(latest):
        detail = f"{report['product']} {version}; another deployment runs {latest}"
        yield Finding("version_skew", deployment, "product_version", detail)
    sdk = report["sdk_version"]
    if policy.min_sdk_version and version_key(sdk) < version_key(policy.min_sdk_version):
        detail = f"SDK {sdk} is below {policy.min_sdk_version}"
        yield Finding("version_skew", deployment, "sdk_version", detail)


def _newest_versions(reports: Reports) -> dict[str, str]:
    """Product → the newest product version any deployment reports."""
    newest: dict[str, str] = {}
    for report in reports:
        product, version = report["product"], report["product_version"]
        if product not in newest or version_key(version) > version_key(newest[product]):
            newest[product] = version
    return newest


def dead_seats(
    account: str,
    reports: Reports,
    sightings: dict[str, str],
    state: LedgerState,
    policy: DriftPolicy,
    now: datetime,
) -> list[tuple[str, str]]:
    """``(activation, last_seen)`` of seats the ledger holds that reports once
    mentioned but none has for longer than ``stale_after`` (never one a current
    report still names)."""
    named = {device_of(account, e) for r in reports for e in r["activations"]}
    cutoff = format_time(now - policy.stale_after)
    dead = []
    for activation, last_seen in sightings.items():
        row = state.activations.get(activation)
        if activation in named or row is None or row["status"] != "active":
            continue
        holders = state.seats.get(row["serial"], {})
        if activation in holders and holds_seat(holders[activation], now) and last_seen < cutoff:
            dead.append((activation, last_seen))
    return sorted(dead)


# ---------------------------------------------------------------- a pass


def run_pass(
    store: Store,
    account: str,
    policy: DriftPolicy,
    now: datetime | None = None,
    ledger: Ledger | None = None,
) -> DriftPass:
    """Reconcile ``account`` now: classify, correct (with ``policy.correct`` and a
    ``ledger``), replace the open findings and record the pass → its summary with
    the findings counted by kind."""
    started = time.perf_counter()
    now = now or datetime.now(UTC)
    with _without_gc_pauses(), store.read() as tx:
        reports = [report.as_mapping() for report in tx.deployments.reports(account)]
        state = read_state(tx, account)
        sightings = tx.deployments.sightings(account) if policy.correct else {}
        findings = classify(account, reports, state, policy, now)
    corrections = 0
    if policy.correct and ledger is not None:
        seats = dead_seats(account, reports, sightings, state, policy, now)
        corrections = _correct(ledger, account, findings, seats)
    done = StoredPass(
        at=format_time(now),
        duration_seconds=round(time.perf_counter() - started, 6),
        reports=len(reports),
        activations=sum(len(r["activations"]) for r in reports),
        findings=len(findings),
        corrections=corrections,
    )
    _store(store, account, findings, done)
    took = round(time.perf_counter() - started, 6)
    return DriftPass(**{**asdict(done), "duration_seconds": took}, by_kind=_counts(findings))


@contextmanager
def _without_gc_pauses() -> Iterator[None]:
    """Pause the cyclic garbage collector while a pass builds its (acyclic) rows:
    with hundreds of thousands of live dicts, its full collections took two thirds of
    a pass (bench/reconcile.py). Reference counting still frees everything."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _correct(
    ledger: Ledger, account: str, findings: list[Finding], seats: list[tuple[str, str]]
) -> int:
    """Append the corrective events → how many were appended (not replayed)."""
    wanted: dict[str, tuple[str, Command, str]] = {}
    for f in findings:
        if f.kind == "expired_token" and f.serial is not None:
            reason = f"reconciler: {f.detail} and is still in use"
            revoke = RevokeToken(f.serial, f.subject)
            wanted[f"reconcile:revoke:{f.subject}"] = ("expired_token", revoke, reason)
    for activation, last_seen in seats:
        reason = f"reconciler: no deployment report has mentioned this device since {last_seen}"
        deactivate = DeactivateDevice(activation)
        wanted[f"reconcile:deactivate:{activation}:{last_seen}"] = ("dead_seat", deactivate, reason)
    appended = 0
    for key, (kind, command, reason) in sorted(wanted.items()):
        submission = Submission(account, command, RECONCILER, reason=reason, idempotency_key=key)
        try:
            outcome = ledger.execute(submission)
        except TenureError as exc:  # the next pass tries again; one refusal stops no other
            _log.warning("correction %s refused: %s", key, exc)
            continue
        if outcome.events and not outcome.replayed:
            appended += 1
            metrics.DRIFT_CORRECTIONS.labels(kind).inc()
    return appended


def _store(store: Store, account: str, findings: list[Finding], done: StoredPass) -> None:
    """Replace the open findings (keeping ``first_seen``) and record the pass."""
    at = done.at
    with store.write() as tx:
        first = tx.drift.first_seen(account)
        stored = [
            StoredFinding(
                f.kind,
                f.deployment,
                f.subject,
                f.detail,
                first.get((f.kind, f.deployment, f.subject), at),
                at,
            )
            for f in findings
        ]
        tx.drift.replace_findings(account, stored)
        tx.drift.record_pass(account, done, format_time(parse_time(at) - PASS_HISTORY))


def _counts(findings: Iterable[Finding]) -> dict[str, int]:
    counts = dict.fromkeys(KINDS, 0)
    for finding in findings:
        counts[finding.kind] += 1
    return counts


# ---------------------------------------------------------------- reading results


def _summary(tx: Transaction, account: str) -> dict[str, int]:
    return {**dict.fromkeys(KINDS, 0), **tx.drift.counts(account)}


def _pass_view(done: StoredPass | None) -> DriftPassSummary | None:
    return None if done is None else DriftPassSummary.model_validate(done, from_attributes=True)


def _findings(tx: Transaction, account: str, kind: str | None, limit: int) -> list[DriftFinding]:
    if kind is not None and kind not in KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(KINDS)}", field="kind")
    if limit < 1:
        raise InvalidInput("limit must be at least 1", field="limit")
    found = tx.drift.findings(account, kind, limit)
    return [DriftFinding.model_validate(f, from_attributes=True) for f in found]


def drift_summary(store: Store, account: str) -> dict[str, int]:
    """Kind → open findings of ``account``; every kind is present (0 when none)."""
    with store.read() as tx:
        return _summary(tx, account)


def list_drift(
    store: Store, account: str, kind: str | None = None, limit: int = 100
) -> list[DriftFinding]:
    """Open findings (of ``kind`` if given), by kind, deployment, subject; at most
    ``limit``. Raises ``InvalidInput`` for an unknown kind or a limit below 1."""
    with store.read() as tx:
        return _findings(tx, account, kind, limit)


def last_pass(store: Store, account: str) -> DriftPassSummary | None:
    """The latest recorded pass of ``account``, or None."""
    with store.read() as tx:
        return _pass_view(tx.drift.last_pass(account))


def drift_list(store: Store, account: str, kind: str | None, limit: int) -> DriftList:
    """The summary, the open findings (as ``list_drift``) and the last pass, read
    together."""
    with store.read() as tx:
        return DriftList(
            summary=_summary(tx, account),
            findings=_findings(tx, account, kind, limit),
            last_pass=_pass_view(tx.drift.last_pass(account)),
        )


@state_source
def drift_metrics(scrape: Scrape) -> Iterable[Metric]:
    """``tenure_drift_findings{kind}``, ``tenure_drift_last_pass_duration_seconds``
    and ``tenure_drift_last_pass_timestamp_seconds`` of the account."""
    findings = GaugeMetricFamily(
        "tenure_drift_findings", "Open drift findings, by kind.", labels=["kind"]
    )
    for kind, count in _summary(scrape.tx, scrape.account).items():
        findings.add_metric([kind], count)
    yield findings
    latest = scrape.tx.drift.last_pass(scrape.account)
    if latest is not None:
        yield GaugeMetricFamily(
            "tenure_drift_last_pass_duration_seconds",
            "Duration of the latest reconciliation pass.",
            value=float(latest.duration_seconds),
        )
        yield GaugeMetricFamily(
            "tenure_drift_last_pass_timestamp_seconds",
            "When the latest reconciliation pass ran (Unix time).",
            value=parse_time(latest.at).timestamp(),
        )


# ---------------------------------------------------------------- the scheduled job


def schedule(store: Store, ledger: Ledger, settings: Any) -> Worker:
    """A pass over every account every ``reconcile_interval_minutes`` (not started)."""
    policy = DriftPolicy.from_settings(settings)

    def run(account: str) -> None:
        run_pass(store, account, policy, ledger=ledger)

    interval = settings.reconcile_interval_minutes * 60
    return account_job("tenure-reconcile", store, run, interval, settings.data_dir)
