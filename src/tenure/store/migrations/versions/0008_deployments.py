"""Deployments and drift: the reports installations send, and what the reconciler
finds in them (docs/drift.md).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"


def _string(length: int) -> sa.types.TypeEngine[str]:
    # PostgreSQL enforces VARCHAR lengths and SQLite does not: TEXT there, as in
    # tenure.store.tables, so that both accept (and answer) the same values.
    return sa.String(length).with_variant(sa.Text(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "deployments",
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
        sqlite_with_rowid=False,
    )
    op.create_table(
        "activation_sightings",
        sa.Column("account", _string(64), primary_key=True),
        sa.Column("activation", _string(64), primary_key=True),
        sa.Column("serial", _string(64), nullable=False),
        sa.Column("last_seen", _string(32), nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "drift_findings",
        sa.Column("account", _string(64), primary_key=True),
        sa.Column("kind", _string(32), primary_key=True),
        sa.Column("deployment", _string(64), primary_key=True),
        sa.Column("subject", _string(200), primary_key=True),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("first_seen", _string(32), nullable=False),
        sa.Column("last_seen", _string(32), nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "drift_passes",
        sa.Column("account", _string(64), primary_key=True),
        sa.Column("at", _string(32), primary_key=True),
        sa.Column("duration_seconds", sa.Float, nullable=False),
        sa.Column("reports", sa.Integer, nullable=False),
        sa.Column("activations", sa.Integer, nullable=False),
        sa.Column("findings", sa.Integer, nullable=False),
        sa.Column("corrections", sa.Integer, nullable=False),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("drift_passes")
    op.drop_table("drift_findings")
    op.drop_table("activation_sightings")
    op.drop_table("deployments")
