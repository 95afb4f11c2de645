"""The two-person rule: the projection of ``approval.*`` events (approval requests
and their status) and of ``plan.retired`` events.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"


def _string(length: int) -> sa.types.TypeEngine[str]:
    # PostgreSQL enforces VARCHAR lengths and SQLite does not: TEXT there, as in
    # tenure.store.tables, so that both accept (and answer) the same values.
    return sa.String(length).with_variant(sa.Text(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "proj_retired_plans",
        sa.Column("account", _string(64), primary_key=True),
        sa.Column("plan", sa.Text, primary_key=True, autoincrement=False),
        sa.Column("product", sa.Text, nullable=True),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "proj_approvals",
        sa.Column("account", _string(64), primary_key=True),
        sa.Column("approval", sa.Text, primary_key=True, autoincrement=False),
        *(
            sa.Column(name, sa.Text, nullable=True)
            for name in (
                "action",
                "target",
                "payload",
                "requested_by",
                "expires_at",
                "status",
                "detail",
            )
        ),
        sqlite_with_rowid=False,
    )
