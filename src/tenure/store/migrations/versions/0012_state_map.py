"""The state map (docs/state.md): a leaf per projection row, a hash per bucket, and
the map's root at each account's head.

Accounts that exist before this migration keep ``state_root`` NULL: the ledger
writer builds their map from their rows when it first opens them, and checkpoints
carry a ``tenure-state`` line from then on.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"


def _string(length: int) -> sa.types.TypeEngine[str]:
    # As in tenure.store.tables: TEXT on PostgreSQL, which enforces VARCHAR lengths.
    return sa.String(length).with_variant(sa.Text(), "postgresql")


def upgrade() -> None:
    op.add_column("ledger_heads", sa.Column("state_root", sa.LargeBinary, nullable=True))
    op.create_table(
        "state_leaves",
        sa.Column("account", _string(64), primary_key=True),
        sa.Column("bucket", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("k", sa.LargeBinary, primary_key=True),
        sa.Column("leaf", sa.LargeBinary, nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "state_buckets",
        sa.Column("account", _string(64), primary_key=True),
        sa.Column("bucket", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("hash", sa.LargeBinary, nullable=False),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("state_buckets")
    op.drop_table("state_leaves")
    with op.batch_alter_table("ledger_heads") as batch:
        batch.drop_column("state_root")
