"""Accounts, and the audit log: a hash chain per account, separate from the ledger.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def _string(length: int) -> sa.types.TypeEngine[str]:
    # PostgreSQL enforces VARCHAR lengths and SQLite does not: TEXT there, so that
    # both accept (and answer) the same values.
    return sa.String(length).with_variant(sa.Text(), "postgresql")


ACCOUNT = _string(64)


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", ACCOUNT, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("created_at", _string(32), nullable=False),
        sa.Column("created_by", _string(80), nullable=False),
    )
    op.create_table(
        "audit_heads",
        sa.Column("account", ACCOUNT, primary_key=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.LargeBinary, nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "audit_log",
        sa.Column("account", ACCOUNT, primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("time", _string(32), nullable=False),
        sa.Column("principal", _string(80), nullable=False),
        sa.Column("action", _string(64), nullable=False),
        sa.Column("outcome", _string(16), nullable=False),
        sa.Column("target", _string(80), nullable=True),
        sa.Column("entry", sa.LargeBinary, nullable=False),
        sa.Column("hash", sa.LargeBinary, nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_audit_log_target", "audit_log", ["account", "target", "seq"])
