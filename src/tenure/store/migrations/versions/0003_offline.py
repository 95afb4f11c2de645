"""Offline operation: activations, seats and revoked tokens (projection), and the
token signing key ring.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def _string(length: int) -> sa.types.TypeEngine[str]:
    # PostgreSQL enforces VARCHAR lengths and SQLite does not: TEXT there, so that
    # both accept (and answer) the same values.
    return sa.String(length).with_variant(sa.Text(), "postgresql")


ACCOUNT = _string(64)


def _key(name: str) -> sa.Column[str]:
    return sa.Column(name, sa.Text, primary_key=True, autoincrement=False)


def _text(name: str, nullable: bool = True) -> sa.Column[str]:
    return sa.Column(name, sa.Text, nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "proj_activations",
        sa.Column("account", ACCOUNT, primary_key=True),
        _key("activation"),
        _text("serial"),
        _text("fingerprint_hash"),
        _text("mode"),
        _text("status"),
        _text("lease_expires_at"),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_proj_activations_serial", "proj_activations", ["account", "serial"])
    op.create_table(
        "proj_license_seats",
        sa.Column("account", ACCOUNT, primary_key=True),
        _key("serial"),
        _text("holders"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "proj_revoked_tokens",
        sa.Column("account", ACCOUNT, primary_key=True),
        _key("jti"),
        _text("serial"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "signing_keys",
        sa.Column("account", ACCOUNT, primary_key=True),
        sa.Column("kid", _string(64), primary_key=True),
        sa.Column("public_key", sa.Text, nullable=False),
        sa.Column("created_at", _string(32), nullable=False),
        sa.Column("retired_at", _string(32), nullable=True),
        sa.Column("publish_until", _string(32), nullable=True),
        sqlite_with_rowid=False,
    )
