"""Webhooks, lifecycle notices and anomaly alerts (docs/webhooks.md): webhook
subscriptions, the ledger cursor their fan-out keeps, deliveries with their
attempts, and the notices and alerts raised.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"


def _string(length: int) -> sa.types.TypeEngine[str]:
    # PostgreSQL enforces VARCHAR lengths and SQLite does not: TEXT there, as in
    # tenure.store.tables, so that both accept (and answer) the same values.
    return sa.String(length).with_variant(sa.Text(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "webhooks",
        sa.Column("account", _string(64), primary_key=True),
        sa.Column("id", _string(40), primary_key=True),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("events", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("secret", sa.Text, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("from_seq", sa.BigInteger, nullable=False),
        sa.Column("created_at", _string(32), nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "webhook_cursors",
        sa.Column("account", _string(64), primary_key=True),
        sa.Column("next_seq", sa.BigInteger, nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "webhook_deliveries",
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
        sqlite_with_rowid=False,
    )
    op.create_index(
        "ix_webhook_deliveries_webhook",
        "webhook_deliveries",
        ["account", "webhook", "created_at"],
    )
    op.create_index(
        "ix_webhook_deliveries_due", "webhook_deliveries", ["status", "next_attempt_at"]
    )
    op.create_table(
        "notices",
        sa.Column("account", _string(64), primary_key=True),
        sa.Column("id", _string(40), primary_key=True),
        sa.Column("kind", _string(32), nullable=False),
        sa.Column("serial", _string(64), nullable=False),
        sa.Column("customer", _string(64), nullable=True),
        sa.Column("expires_at", _string(32), nullable=False),
        sa.Column("lead", sa.Integer, nullable=True),
        sa.Column("created_at", _string(32), nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_notices_created", "notices", ["account", "created_at"])
    op.create_table(
        "alerts",
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
        sqlite_with_rowid=False,
    )
    op.create_index("ix_alerts_created", "alerts", ["account", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_alerts_created", "alerts")
    op.drop_table("alerts")
    op.drop_index("ix_notices_created", "notices")
    op.drop_table("notices")
    op.drop_index("ix_webhook_deliveries_due", "webhook_deliveries")
    op.drop_index("ix_webhook_deliveries_webhook", "webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_cursors")
    op.drop_table("webhooks")
