"""Accounts (SPEC "Concepts"): tenants that never see each other.

The install's operator account (``Settings.default_account``) exists from the first
start; its owners create the other accounts, each with a first owner key (shown
once). Every other object — keys, ledger, checkpoints, audit chain — belongs to
exactly one account.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from tenure.domain.timefmt import format_time
from tenure.errors import Conflict, InvalidInput, NotFound
from tenure.service.apikeys import insert_api_key
from tenure.store import tables as t
from tenure.store.engine import read_transaction, write_transaction

ACCOUNT_ID = re.compile(r"[a-z0-9][a-z0-9-]{1,62}", re.ASCII)
"""Lower-case letters, digits and dashes: it appears in checkpoint origins and URLs."""


def check_account_id(account: str) -> str:
    if ACCOUNT_ID.fullmatch(account) is None:
        raise InvalidInput(
            "an account id is 2 to 63 lower-case letters, digits and dashes, "
            "starting with a letter or digit",
            field="id",
        )
    return account


def _view(row: Any) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "created_at": row.created_at}


def ensure_account(engine: sa.Engine, account: str, name: str, created_by: str) -> None:
    """Record ``account`` if it is not recorded yet (the operator account on start)."""
    with write_transaction(engine) as conn:
        exists = conn.scalar(sa.select(t.accounts.c.id).where(t.accounts.c.id == account))
        if exists is None:
            conn.execute(
                sa.insert(t.accounts).values(
                    id=account,
                    name=name,
                    created_at=format_time(datetime.now(UTC)),
                    created_by=created_by,
                )
            )


def create_in(conn: sa.Connection, account: str, name: str, created_by: str) -> dict[str, Any]:
    """Create ``account`` and its first owner key inside the caller's write
    transaction; ``Conflict`` if the id is taken (also by keys made before accounts
    were recorded)."""
    check_account_id(account)
    taken = conn.scalar(sa.select(t.accounts.c.id).where(t.accounts.c.id == account))
    if taken is None:
        taken = conn.scalar(
            sa.select(t.api_keys.c.account).where(t.api_keys.c.account == account).limit(1)
        )
    if taken is not None:
        raise Conflict(f"account {account} already exists", field="id")
    created_at = format_time(datetime.now(UTC))
    conn.execute(
        sa.insert(t.accounts).values(
            id=account, name=name, created_at=created_at, created_by=created_by
        )
    )
    # The first owner key records who made it, but that key is of another account:
    # in its own account's key lineage the first owner key is a top.
    owner, key = insert_api_key(conn, account, "owner", "first owner", created_by=created_by)
    return {
        "id": account,
        "name": name,
        "created_at": created_at,
        "owner_key_id": owner.id,
        "owner_key": key,
    }


def list_accounts(engine: sa.Engine, only: str | None = None) -> list[dict[str, Any]]:
    """Every recorded account (or only ``only``), by id."""
    query = sa.select(t.accounts).order_by(t.accounts.c.id)
    if only is not None:
        query = query.where(t.accounts.c.id == only)
    with read_transaction(engine) as conn:
        return [_view(row) for row in conn.execute(query)]


def get_account(engine: sa.Engine, account: str) -> dict[str, Any]:
    found = list_accounts(engine, only=account)
    if not found:
        raise NotFound(f"no account {account}", field="id")
    return found[0]
