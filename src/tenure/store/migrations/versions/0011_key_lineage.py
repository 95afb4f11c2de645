"""Key lineage: every API key records the key that created it (the two-person rule,
docs/approvals.md).

Keys that exist before this migration keep ``created_by`` NULL: their creator is
unknown, so the rule treats each of them as a key no other key created.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"


def _string(length: int) -> sa.types.TypeEngine[str]:
    # As in tenure.store.tables: TEXT on PostgreSQL, which enforces VARCHAR lengths.
    return sa.String(length).with_variant(sa.Text(), "postgresql")


def upgrade() -> None:
    # A nullable column without a default: SQLite adds it without rewriting the table.
    op.add_column("api_keys", sa.Column("created_by", _string(40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("created_by")
