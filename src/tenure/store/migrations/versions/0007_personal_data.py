"""Personal data: the projection of sealed customer fields (``customer_sealed``) and
of ``customer.erased`` events (``customer_erasures``); see docs/personal-data.md.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"


def _string(length: int) -> sa.types.TypeEngine[str]:
    # PostgreSQL enforces VARCHAR lengths and SQLite does not: TEXT there, as in
    # tenure.store.tables, so that both accept (and answer) the same values.
    return sa.String(length).with_variant(sa.Text(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "proj_customer_sealed",
        sa.Column("account", _string(64), primary_key=True),
        sa.Column("customer", sa.Text, primary_key=True, autoincrement=False),
        sa.Column("sealed_in", sa.Text, nullable=True),
        sa.Column("name", sa.Text, nullable=True),
        sa.Column("email", sa.Text, nullable=True),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "proj_customer_erasures",
        sa.Column("account", _string(64), primary_key=True),
        sa.Column("customer", sa.Text, primary_key=True, autoincrement=False),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("proj_customer_erasures")
    op.drop_table("proj_customer_sealed")
