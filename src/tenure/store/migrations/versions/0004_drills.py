"""Drills: the result of each restore drill.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def _string(length: int) -> sa.types.TypeEngine[str]:
    # PostgreSQL enforces VARCHAR lengths and SQLite does not: TEXT there, so that
    # both accept (and answer) the same values.
    return sa.String(length).with_variant(sa.Text(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "drills",
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
        sqlite_with_rowid=False,
    )
