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

from tenure.domain.timefmt import format_time
from tenure.errors import Conflict, InvalidInput, NotFound
from tenure.service.apikeys import insert_api_key
from tenure.store.accounts import StoredAccount
from tenure.store.unit import Store, Transaction

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


def _view(account: StoredAccount) -> dict[str, Any]:
    return {"id": account.id, "name": account.name, "created_at": account.created_at}


def ensure_account(store: Store, account: str, name: str, created_by: str) -> None:
    """Record ``account`` if it is not recorded yet (the operator account on start)."""
    with store.write() as tx:
        if tx.accounts.get(account) is None:
            now = format_time(datetime.now(UTC))
            tx.accounts.add(StoredAccount(account, name, now, created_by))


def create_in(tx: Transaction, account: str, name: str, created_by: str) -> dict[str, Any]:
    """Create ``account`` and its first owner key inside the caller's write
    transaction; ``Conflict`` if the id is taken (also by keys made before accounts
    were recorded)."""
    check_account_id(account)
    if tx.accounts.get(account) is not None or tx.apikeys.count(account):
        raise Conflict(f"account {account} already exists", field="id")
    created_at = format_time(datetime.now(UTC))
    tx.accounts.add(StoredAccount(account, name, created_at, created_by))
    # The first owner key records who made it, but that key is of another account:
    # in its own account's key lineage the first owner key is a top.
    owner, key = insert_api_key(tx, account, "owner", "first owner", created_by=created_by)
    return {
        "id": account,
        "name": name,
        "created_at": created_at,
        "owner_key_id": owner.id,
        "owner_key": key,
    }


def list_accounts(store: Store, only: str | None = None) -> list[dict[str, Any]]:
    """Every recorded account (or only ``only``), by id."""
    with store.read() as tx:
        return [_view(account) for account in tx.accounts.listing(only)]


def get_account(store: Store, account: str) -> dict[str, Any]:
    found = list_accounts(store, only=account)
    if not found:
        raise NotFound(f"no account {account}", field="id")
    return found[0]
