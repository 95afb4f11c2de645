"""Legacy import: the projection of ``license.legacy_mapped`` events (which license
an id of another licensing system became, and the hash of its key there).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"


def _string(length: int) -> sa.types.TypeEngine[str]:
    # PostgreSQL enforces VARCHAR lengths and SQLite does not: TEXT there, as in
    # tenure.store.tables, so that both accept (and answer) the same values.
    return sa.String(length).with_variant(sa.Text(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "proj_legacy_ids",
        sa.Column("account", _string(64), primary_key=True),
        sa.Column("system", sa.Text, primary_key=True, autoincrement=False),
        sa.Column("legacy_id", sa.Text, primary_key=True, autoincrement=False),
        sa.Column("serial", sa.Text, nullable=True),
        sa.Column("legacy_key_hash", sa.Text, nullable=True),
        sqlite_with_rowid=False,
    )
    # Checks look a legacy key up by its hash, with or without knowing the account.
    op.create_index("ix_proj_legacy_ids_key_hash", "proj_legacy_ids", ["legacy_key_hash"])
