"""Operational counters per minute (SLOs, anomaly baselines; docs/observability.md).

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"


def _string(length: int) -> sa.types.TypeEngine[str]:
    # As in tenure.store.tables: TEXT on PostgreSQL, which enforces VARCHAR lengths.
    return sa.String(length).with_variant(sa.Text(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "ops_minutes",
        sa.Column("account", _string(64), primary_key=True),
        sa.Column("minute", _string(17), primary_key=True),
        sa.Column("metric", _string(64), primary_key=True),
        sa.Column("count", sa.BigInteger, nullable=False),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("ops_minutes")
