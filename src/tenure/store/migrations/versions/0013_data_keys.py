"""Data keys in the database (docs/personal-data.md): each customer's personal-data
key, wrapped under the master key, so that every server on one database opens every
customer's sealed fields without a shared filesystem.

The table starts empty. The key files of 0.2.0 (``<data-dir>/datakeys/``) are
imported by the service when it opens the storage (``tenure.service.personal``),
since a migration knows neither the data dir nor the master key. Not reversible: a
downgrade would drop every key, and 0.2.0 would find no key file either.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"


def _string(length: int) -> sa.types.TypeEngine[str]:
    # As in tenure.store.tables: TEXT on PostgreSQL, which enforces VARCHAR lengths.
    return sa.String(length).with_variant(sa.Text(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "data_keys",
        sa.Column("account", _string(64), primary_key=True),
        sa.Column("customer", _string(64), primary_key=True),
        sa.Column("wrapped", sa.LargeBinary, nullable=False),
        sa.Column("created_at", _string(32), nullable=False),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("data_keys")
