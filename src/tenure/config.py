"""Settings: one typed object, read from ``TENURE_*`` environment variables and
command-line options, validated once at start."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIGRATION_FILE = "migration.json"
"""``<data-dir>/migration.json``: a backend migration in progress (docs/migration.md)."""


class Settings(BaseSettings):
    """Everything Tenure can be told. Built by the CLI and the app factory only."""

    model_config = SettingsConfigDict(env_prefix="TENURE_", extra="ignore")

    data_dir: Path = Field(Path("var"), description="holds tenure.db, master.key, keys/")
    database_url: str | None = Field(None, description="overrides sqlite:///<data-dir>/tenure.db")
    master_key: SecretStr | None = Field(None, description="base64 master key (else master.key)")
    key_store: Literal["file", "pkcs11"] = Field(
        "file",
        description="where signing keys live: file (sealed under the master key in "
        "<data-dir>/keys/) or pkcs11 (generated on a PKCS#11 token, never extractable; "
        "docs/keys.md)",
    )
    pkcs11_module: Path = Field(
        Path("/usr/lib/softhsm/libsofthsm2.so"),
        description="the PKCS#11 module (shared library) of the HSM",
    )
    pkcs11_token_label: str = Field("", description="label of the PKCS#11 token holding the keys")
    pkcs11_pin: SecretStr | None = Field(None, description="user PIN of the PKCS#11 token")
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    ledger_origin_prefix: str = Field(
        "tenure.localhost/ledger", description="checkpoint origin = <prefix>/<account>"
    )
    checkpoint_every_events: int = Field(1000, ge=1)
    checkpoint_interval_seconds: float = Field(1.0, gt=0)
    write_batch_max: int = Field(512, ge=1)
    audit_batch_max: int = Field(
        1000,
        ge=1,
        description="decisions' audit entries chained per write; 1 writes each decision "
        "in a transaction of its own (no batching, for comparison)",
    )
    decision_sync: Literal["disk", "os"] = Field(
        "disk",
        description="when a decision's audit entry counts as durable: disk (the "
        "commit waits for the disk, the default) or os (the operating system holds "
        "it: a crash of the server process keeps it, a crash of the machine or of "
        "PostgreSQL may lose the last entries; answers come faster)",
    )
    check_cache_rows: int = Field(
        10_000,
        ge=0,
        description="licenses and credentials each server process keeps proven in "
        "memory for checks, while no row they read changes (0: read every check from "
        "the store)",
    )
    default_account: str = "default"
    sites: str = Field(
        "",
        description="comma-separated site URLs (file:///path, s3://bucket/prefix) that "
        "receive ledger segments and snapshots",
    )
    ship_interval_seconds: float = Field(
        1.0, gt=0, description="how often new events are shipped to the sites (the RPO)"
    )
    snapshot_every_events: int = Field(
        100_000, ge=1, description="take a snapshot after this many new events"
    )
    snapshot_interval_minutes: float = Field(
        60.0, gt=0, description="take a snapshot this often if anything changed"
    )
    state_verify_minutes: float = Field(
        10.0,
        ge=0,
        description="prove every account's stored state against its signed root this often "
        "(docs/state.md; 0: only at start)",
    )
    drill_interval_minutes: float = Field(
        0.0, ge=0, description="restore drills from the first site this often (0: never)"
    )
    lease_seconds: int = Field(
        900, ge=10, le=30 * 86400, description="how long a floating activation's lease lasts"
    )
    approval_ttl_hours: float = Field(
        24.0, gt=0, description="how long an approval request may wait for a second principal"
    )
    approval_revoke_threshold: int = Field(
        10,
        ge=0,
        description="license revocations allowed per window without approval; the one "
        "that would cross it becomes an approval request",
    )
    approval_revoke_window_minutes: float = Field(
        60.0, gt=0, description="the window that approval_revoke_threshold counts in"
    )
    encrypt_personal_data: bool = Field(
        True,
        description="seal customers' personal data (name, e-mail) with per-customer keys, "
        "kept in the database wrapped by the master key (docs/personal-data.md); "
        "false writes plaintext",
    )
    upgrade_on_start: bool = Field(
        True,
        description="upgrade an older schema when the service starts, after the snapshot "
        "`tenure db upgrade` takes (both logged); false: refuse to start on an older schema "
        "until `tenure db upgrade`. Other commands never upgrade: they refuse an older schema",
    )
    # Transport and limits (docs/hardening.md).
    tls_cert: Path | None = Field(None, description="PEM server certificate: serve HTTPS")
    tls_key: Path | None = Field(None, description="PEM private key of tls_cert")
    tls_client_ca: Path | None = Field(
        None,
        description="PEM CA bundle: request client certificates verified against it; "
        "API keys of the agent role then need one",
    )
    max_body_bytes: int = Field(
        1024 * 1024, ge=1024, description="largest request body on any route (else 413)"
    )
    rate_check_per_second: float = Field(
        10_000.0, gt=0, description="checks per second per client IP and per credential"
    )
    rate_check_burst: int = Field(20_000, ge=1, description="checks allowed in a burst")
    rate_activation_per_second: float = Field(
        100.0,
        gt=0,
        description="activation and token requests per second per client IP and credential",
    )
    rate_activation_burst: int = Field(1_000, ge=1, description="activations in a burst")
    rate_auth_failures_per_minute: int = Field(
        120,
        ge=1,
        description="401s per minute per client IP (also the burst); past it, requests "
        "with credentials from that IP get 429",
    )
    forwarded_allow_ips: str = Field(
        "",
        description="comma-separated proxy addresses or networks (10.0.0.0/8) whose "
        "X-Forwarded-For and X-Forwarded-Proto are believed; empty (default): none, the "
        "client is the TCP peer (docs/hardening.md)",
    )
    public_url: str | None = Field(
        None,
        description="the service's public base URL (https://licenses.example.com): "
        "absolute URLs in answers are built from it, never from the Host header; "
        "unset: such URLs are relative",
    )
    # --- Deployments and drift (docs/operations.md) ---
    drift_stale_after_minutes: float = Field(
        60.0,
        gt=0,
        description="a deployment report older than this is stale_report drift, and a seat "
        "no report has mentioned for this long is a dead seat (docs/drift.md)",
    )
    reconcile_interval_minutes: float = Field(
        5.0, ge=0, description="run a reconciliation pass this often (0: never)"
    )
    reconcile_correct: bool = Field(
        False,
        description="let the reconciler append corrective events: token.revoked for "
        "expired tokens still in use, activation.deactivated for dead seats",
    )
    drift_min_product_version: str = Field(
        "", max_length=64, description="product versions below this are version_skew drift"
    )
    drift_min_sdk_version: str = Field(
        "", max_length=64, description="SDK versions below this are version_skew drift"
    )
    # --- Metrics, tracing, logs and SLOs (docs/operations.md) ---
    metrics_enabled: bool = Field(
        True,
        description="count process metrics (decisions, requests, appends) for /metrics; "
        "false leaves only the state metrics read at scrape time",
    )
    metrics_token: SecretStr | None = Field(
        None, description="when set, /metrics needs Authorization: Bearer <metrics_token>"
    )
    otlp_endpoint: str | None = Field(
        None, description="OTLP/HTTP traces endpoint (e.g. http://collector:4318/v1/traces)"
    )
    tracing_enabled: bool | None = Field(
        None, description="record OpenTelemetry spans (default: on when otlp_endpoint is set)"
    )
    tracing_sample_ratio: float = Field(
        1.0, ge=0.0, le=1.0, description="share of traces sampled (parent-based)"
    )
    log_format: Literal["auto", "json", "text"] = Field(
        "auto",
        description="`tenure serve` log lines: one JSON object per line, or text; auto: "
        "text when stderr is a terminal, JSON otherwise",
    )
    ops_flush_seconds: float = Field(
        10.0, gt=0, description="how often per-minute counters are added into ops_minutes"
    )
    slo_availability: float = Field(
        0.999, gt=0, lt=1, description="objective: share of checks answered without a 5xx"
    )
    slo_latency_ms: float = Field(
        50.0, gt=0, description="a check answered slower than this is slow (SLO)"
    )
    slo_latency_target: float = Field(
        0.99, gt=0, lt=1, description="objective: share of checks answered within slo_latency_ms"
    )
    slo_window_days: float = Field(30.0, gt=0, description="the SLO window (error budget)")
    # --- Webhooks, lifecycle notices and anomaly alerts (docs/operations.md) ---
    webhook_allow_private: bool = Field(
        False,
        description="allow webhook URLs whose host resolves to private, loopback, "
        "link-local or otherwise non-public addresses (docs/webhooks.md)",
    )
    webhook_retry_schedule: str = Field(
        "5s,30s,2m,10m,1h",
        description="waits before each retry of a failed webhook delivery (s, m, h); "
        "after the last one the delivery is failed",
    )
    webhook_timeout_seconds: float = Field(
        10.0, gt=0, le=120, description="timeout of one webhook delivery request"
    )
    webhook_concurrency: int = Field(
        8, ge=1, le=256, description="webhook deliveries in flight at most (per process)"
    )
    webhook_poll_seconds: float = Field(
        1.0, gt=0, description="how often the webhook worker looks for new events and retries"
    )
    notice_expiring_lead_days: str = Field(
        "30,7,1", description="days before expiry that license.expiring_soon notices are sent"
    )
    notice_interval_seconds: float = Field(
        300.0, ge=0, description="how often lifecycle notices are looked for (0: never)"
    )
    alert_interval_seconds: float = Field(
        60.0, ge=0, description="how often anomaly detection runs (0: never)"
    )
    alert_window_minutes: float = Field(
        15.0, gt=0, description="the sliding window whose event count is compared"
    )
    alert_baseline_hours: float = Field(
        24.0, gt=0, description="the history (in windows of the same length) of the baseline"
    )
    alert_k: float = Field(4.0, ge=0, description="standard deviations above the baseline mean")
    alert_min_count: int = Field(
        10, ge=1, description="no alert while a window holds at most this many events"
    )
    # --- Web console (docs/operations.md) ---

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _proxy_networks(cls, value: str) -> str:
        for entry in (part.strip() for part in value.split(",")):
            if entry and entry != "*":
                try:
                    ipaddress.ip_network(entry, strict=False)
                except ValueError:
                    raise ValueError(f"{entry!r} is not an IP address or network") from None
        return value

    @field_validator("public_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http:// or https:// URL with a host")
        if parts.query or parts.fragment or "@" in parts.netloc:
            raise ValueError("must be a base URL: no query, fragment or user")
        return value.rstrip("/")

    def proxy_networks(self) -> list[str]:
        """``forwarded_allow_ips`` as a list (empty: trust no forwarded header)."""
        return [part.strip() for part in self.forwarded_allow_ips.split(",") if part.strip()]

    def public(self, path: str) -> str:
        """``path`` (starting with ``/``) as an answer may carry it: under
        ``public_url``, or relative when it is unset, never from the request's Host."""
        return f"{self.public_url or ''}{path}"

    def ledger_origin(self, account: str) -> str:
        """The checkpoint origin (ledger key name) of ``account``."""
        return f"{self.ledger_origin_prefix.rstrip('/')}/{account}"

    def site_urls(self) -> list[str]:
        """``sites`` as a list."""
        return [url.strip() for url in self.sites.split(",") if url.strip()]

    def database(self) -> str:
        """The database URL in effect. During a backend migration (``tenure migrate
        start``) the phase in ``<data-dir>/migration.json`` decides: the source until
        cutover (and after a rollback), the target from cutover on."""
        path = self.data_dir / MIGRATION_FILE
        if path.exists():
            state = json.loads(path.read_text())
            cut = state["phase"] in ("cutover", "done")
            return str(state["target"] if cut else state["source"])
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'tenure.db').as_posix()}"
