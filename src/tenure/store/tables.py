"""SQLAlchemy Core tables. Every table is keyed by ``account`` first so accounts
can be sharded later without a design change.

The Alembic migrations under ``migrations/versions`` create these tables; a test
checks that the migrated schema and this metadata agree.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from tenure.domain.state import TABLES

metadata = sa.MetaData()


def _string(length: int) -> sa.types.TypeEngine[str]:
    """VARCHAR(length) on SQLite; TEXT on PostgreSQL, which (unlike SQLite) would
    refuse longer values and fail a whole write batch over one long field."""
    return sa.String(length).with_variant(sa.Text(), "postgresql")


# Tables keyed by a composite primary key are stored as one B-tree (no rowid table
# plus a separate key index): about half the pages written per append.
WITHOUT_ROWID: dict[str, Any] = {"sqlite_with_rowid": False}

ledger_heads = sa.Table(
    "ledger_heads",
    metadata,
    sa.Column("account", _string(64), primary_key=True),
    sa.Column("origin", sa.Text, nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    # The state map's root after the head's last event (docs/state.md); NULL until
    # the map of an account written before 0.3.0 is built.
    sa.Column("state_root", sa.LargeBinary, nullable=True),
    **WITHOUT_ROWID,
)

ledger_events = sa.Table(
    "ledger_events",
    metadata,
    sa.Column("account", _string(64), primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("id", _string(40), nullable=False),
    sa.Column("type", _string(64), nullable=False),
    sa.Column("subject", _string(64), nullable=True),
    sa.Column("time", _string(32), nullable=False),
    sa.Column("idempotency_key", _string(255), nullable=True),
    sa.Column("leaf", sa.LargeBinary, nullable=False),
    sa.UniqueConstraint("account", "id", name="uq_ledger_events_id"),
    sa.Index("ix_ledger_events_subject", "account", "subject", "seq"),
    **WITHOUT_ROWID,
)

ledger_nodes = sa.Table(
    "ledger_nodes",
    metadata,
    sa.Column("account", _string(64), primary_key=True),
    sa.Column("level", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("hash", sa.LargeBinary, nullable=False),
    **WITHOUT_ROWID,
)

ledger_checkpoints = sa.Table(
    "ledger_checkpoints",
    metadata,
    sa.Column("account", _string(64), primary_key=True),
    sa.Column("size", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("root", sa.LargeBinary, nullable=False),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("signed_at", _string(32), nullable=False),
    **WITHOUT_ROWID,
)

# The state map (tenure.ledger.statemap): a leaf per projection row, and each
# bucket's leaf count and subtree hash; keyed by bucket first so that a bucket's
# leaves are one range.
state_leaves = sa.Table(
    "state_leaves",
    metadata,
    sa.Column("account", _string(64), primary_key=True),
    sa.Column("bucket", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("k", sa.LargeBinary, primary_key=True),
    sa.Column("leaf", sa.LargeBinary, nullable=False),
    **WITHOUT_ROWID,
)

state_buckets = sa.Table(
    "state_buckets",
    metadata,
    sa.Column("account", _string(64), primary_key=True),
    sa.Column("bucket", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("hash", sa.LargeBinary, nullable=False),
    **WITHOUT_ROWID,
)

ledger_keys = sa.Table(
    "ledger_keys",
    metadata,
    sa.Column("account", _string(64), primary_key=True),
    sa.Column("key_id", _string(8), primary_key=True),
    sa.Column("verifier", sa.Text, nullable=False),
    sa.Column("created_at", _string(32), nullable=False),
    **WITHOUT_ROWID,
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("account", _string(64), primary_key=True),
    sa.Column("key", _string(255), primary_key=True),
    sa.Column("request_hash", _string(64), nullable=False),
    sa.Column("first_seq", sa.BigInteger, nullable=True),
    sa.Column("event_count", sa.Integer, nullable=False),
    sa.Column("result", sa.Text, nullable=False),
    sa.Column("created_at", _string(32), nullable=False),
    **WITHOUT_ROWID,
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", _string(40), primary_key=True),
    sa.Column("account", _string(64), nullable=False),
    sa.Column("key_hash", _string(64), nullable=False, unique=True),
    sa.Column("role", _string(16), nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("created_at", _string(32), nullable=False),
    sa.Column("revoked_at", _string(32), nullable=True),
    # The key that created this one (migration 0011; tenure.domain.lineage). NULL: no
    # key of the account did (the bootstrap owner key, a first owner key, a key made
    # on the storage) or the key predates 0011 and its creator is unknown.
    sa.Column("created_by", _string(40), nullable=True),
)

read_generation = sa.Table(
    "read_generation",
    metadata,
    # Per account, moved by triggers on every change to a row a check reads
    # (migration 0014): a server answers checks from rows it proved while it stands.
    sa.Column("account", _string(64), primary_key=True),
    sa.Column("n", sa.BigInteger, nullable=False),
    **WITHOUT_ROWID,
)

accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("id", _string(64), primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("created_at", _string(32), nullable=False),
    sa.Column("created_by", _string(80), nullable=False),
)

audit_heads = sa.Table(
    "audit_heads",
    metadata,
    sa.Column("account", _string(64), primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.LargeBinary, nullable=False),
    **WITHOUT_ROWID,
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("account", _string(64), primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("time", _string(32), nullable=False),
    sa.Column("principal", _string(80), nullable=False),
    sa.Column("action", _string(64), nullable=False),
    sa.Column("outcome", _string(16), nullable=False),
    sa.Column("target", _string(80), nullable=True),
    sa.Column("entry", sa.LargeBinary, nullable=False),
    sa.Column("hash", sa.LargeBinary, nullable=False),
    sa.Index("ix_audit_log_target", "account", "target", "seq"),
    **WITHOUT_ROWID,
)

_INTEGER_COLUMNS = frozenset({"version", "latest_version", "plan_version"})


def _projection_table(name: str) -> sa.Table:
    spec = TABLES[name]
    columns = [sa.Column("account", _string(64), primary_key=True)]
    for column in spec.columns:
        kind: sa.types.TypeEngine[Any] = sa.Integer() if column in _INTEGER_COLUMNS else sa.Text()
        columns.append(sa.Column(column, kind, primary_key=column in spec.key, autoincrement=False))
    return sa.Table(f"proj_{name}", metadata, *columns, **WITHOUT_ROWID)


projection = {name: _projection_table(name) for name in TABLES}
_licenses = projection["licenses"].c
sa.Index("ix_proj_licenses_customer", _licenses.account, _licenses.customer)
sa.Index("ix_proj_licenses_status", _licenses.account, _licenses.status)
sa.Index("ix_proj_licenses_key_hash", _licenses.key_hash, unique=True)
_activations = projection["activations"].c
sa.Index("ix_proj_activations_serial", _activations.account, _activations.serial)
_legacy_ids = projection["legacy_ids"].c
sa.Index("ix_proj_legacy_ids_key_hash", _legacy_ids.legacy_key_hash)

signing_keys = sa.Table(
    "signing_keys",
    metadata,
    sa.Column("account", _string(64), primary_key=True),
    sa.Column("kid", _string(64), primary_key=True),
    sa.Column("public_key", sa.Text, nullable=False),
    sa.Column("created_at", _string(32), nullable=False),
    sa.Column("retired_at", _string(32), nullable=True),
    sa.Column("publish_until", _string(32), nullable=True),
    **WITHOUT_ROWID,
)

drills = sa.Table(
    "drills",
    metadata,
    sa.Column("account", _string(64), primary_key=True),
    sa.Column("at", _string(32), primary_key=True),
    sa.Column("site", sa.Text, nullable=False),
    sa.Column("passed", sa.Boolean, nullable=False),
    sa.Column("rto_seconds", sa.Float, nullable=False),
    sa.Column("rpo_events", sa.BigInteger, nullable=False),
    sa.Column("rpo_seconds", sa.Float, nullable=False),
    sa.Column("restored_size", sa.BigInteger, nullable=False),
    sa.Column("live_size", sa.BigInteger, nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    **WITHOUT_ROWID,
)

# --- Deployments and drift (migration 0008; tenure.ops.reconcile) ---

deployments = sa.Table(
    "deployments",
    metadata,
    sa.Column("account", _string(64), primary_key=True),
    sa.Column("deployment", _string(64), primary_key=True),
    sa.Column("product", _string(64), nullable=False),
    sa.Column("product_version", _string(64), nullable=False),
    sa.Column("sdk_version", _string(64), nullable=False),
    sa.Column("reported_at", _string(32), nullable=False),
    sa.Column("received_at", _string(32), nullable=False),
    sa.Column("reported_by", _string(80), nullable=False),
    sa.Column("activation_count", sa.Integer, nullable=False),
    sa.Column("activations", sa.LargeBinary, nullable=False),
    **WITHOUT_ROWID,
)

activation_sightings = sa.Table(
    "activation_sightings",
    metadata,
    sa.Column("account", _string(64), primary_key=True),
    sa.Column("activation", _string(64), primary_key=True),
    sa.Column("serial", _string(64), nullable=False),
    sa.Column("last_seen", _string(32), nullable=False),
    **WITHOUT_ROWID,
)

drift_findings = sa.Table(
    "drift_findings",
    metadata,
    sa.Column("account", _string(64), primary_key=True),
    sa.Column("kind", _string(32), primary_key=True),
    sa.Column("deployment", _string(64), primary_key=True),
    sa.Column("subject", _string(200), primary_key=True),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("first_seen", _string(32), nullable=False),
    sa.Column("last_seen", _string(32), nullable=False),
    **WITHOUT_ROWID,
)

drift_passes = sa.Table(
    "drift_passes",
    metadata,
    sa.Column("account", _string(64), primary_key=True),
    sa.Column("at", _string(32), primary_key=True),
    sa.Column("duration_seconds", sa.Float, nullable=False),
    sa.Column("reports", sa.Integer, nullable=False),
    sa.Column("activations", sa.Integer, nullable=False),
    sa.Column("findings", sa.Integer, nullable=False),
    sa.Column("corrections", sa.Integer, nullable=False),
    **WITHOUT_ROWID,
)

# --- Webhooks, lifecycle notices and anomaly alerts (migration 0009) ---

webhooks = sa.Table(
    "webhooks",
    metadata,
    sa.Column("account", _string(64), primary_key=True),
    sa.Column("id", _string(40), primary_key=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("events", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("secret", sa.Text, nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("from_seq", sa.BigInteger, nullable=False),
    sa.Column("created_at", _string(32), nullable=False),
    **WITHOUT_ROWID,
)

webhook_cursors = sa.Table(
    "webhook_cursors",
    metadata,
    sa.Column("account", _string(64), primary_key=True),
    sa.Column("next_seq", sa.BigInteger, nullable=False),
    **WITHOUT_ROWID,
)

webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("account", _string(64), primary_key=True),
    sa.Column("id", _string(40), primary_key=True),
    sa.Column("webhook", _string(40), nullable=False),
    sa.Column("event_type", _string(64), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("status", _string(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", _string(32), nullable=True),
    sa.Column("lease_until", _string(32), nullable=True),
    sa.Column("last_status_code", sa.Integer, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("history", sa.Text, nullable=False),
    sa.Column("created_at", _string(32), nullable=False),
    sa.Index("ix_webhook_deliveries_webhook", "account", "webhook", "created_at"),
    sa.Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    **WITHOUT_ROWID,
)

notices = sa.Table(
    "notices",
    metadata,
    sa.Column("account", _string(64), primary_key=True),
    sa.Column("id", _string(40), primary_key=True),
    sa.Column("kind", _string(32), nullable=False),
    sa.Column("serial", _string(64), nullable=False),
    sa.Column("customer", _string(64), nullable=True),
    sa.Column("expires_at", _string(32), nullable=False),
    sa.Column("lead", sa.Integer, nullable=True),
    sa.Column("created_at", _string(32), nullable=False),
    sa.Index("ix_notices_created", "account", "created_at"),
    **WITHOUT_ROWID,
)

alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("account", _string(64), primary_key=True),
    sa.Column("id", _string(40), primary_key=True),
    sa.Column("kind", _string(32), nullable=False),
    sa.Column("window_start", _string(32), nullable=False),
    sa.Column("window_end", _string(32), nullable=False),
    sa.Column("observed", sa.Integer, nullable=False),
    sa.Column("baseline", sa.Float, nullable=False),
    sa.Column("threshold", sa.Float, nullable=False),
    sa.Column("created_at", _string(32), nullable=False),
    sa.Column("cleared_at", _string(32), nullable=True),
    sa.Index("ix_alerts_created", "account", "created_at"),
    **WITHOUT_ROWID,
)

# --- Operational counters per minute (migration 0010; tenure.ops.counters) ---

ops_minutes = sa.Table(
    "ops_minutes",
    metadata,
    sa.Column("account", _string(64), primary_key=True),
    sa.Column("minute", _string(17), primary_key=True),
    sa.Column("metric", _string(64), primary_key=True),
    sa.Column("count", sa.BigInteger, nullable=False),
    **WITHOUT_ROWID,
)

# --- Customers' data keys, wrapped under the master key (migration 0013;
# tenure.store.data_keys, docs/personal-data.md) ---

data_keys = sa.Table(
    "data_keys",
    metadata,
    sa.Column("account", _string(64), primary_key=True),
    sa.Column("customer", _string(64), primary_key=True),
    sa.Column("wrapped", sa.LargeBinary, nullable=False),
    sa.Column("created_at", _string(32), nullable=False),
    **WITHOUT_ROWID,
)
