"""The checks' read model (issue 19; docs/state.md, "Checks from proven rows in
memory"), on each backend with a real ``tenure serve``: checks of a license already
checked are answered from memory (the hit counter in /metrics moves, the miss counter
does not), and every change to a row a check reads — through the API or written
behind the server's back — moves the account's read generation, so that the next
check (on PostgreSQL: once the trigger's notification arrived) reads, proves and
answers the stored rows."""

from __future__ import annotations

import importlib.util
import re
import time
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from support.api import apply_example_catalog, issue_license, ledger_size
from support.server import Server
from tenure.store import migrations
from tenure.store import tables as t
from tenure.store.engine import create_engine
from tenure.store.unit import SqlStore

ACCOUNT = "default"
MIGRATION = Path(migrations.__file__).parent / "versions" / "0014_read_generation.py"


def _watched() -> tuple[str, ...]:
    """The tables migration 0014 watches (what a check or its credential reads)."""
    spec = importlib.util.spec_from_file_location("read_generation_0014", MIGRATION)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    watched: tuple[str, ...] = module.WATCHED
    return watched


def _lookups(server: Server) -> dict[str, float]:
    text = httpx.get(f"{server.url}/metrics").text
    found = re.findall(
        r'^tenure_check_read_model_lookups_total\{result="(\w+)"\} (\S+)$', text, re.M
    )
    return {result: float(value) for result, value in found}


def _check(client: httpx.Client, serial: str, entitlement: str = "seats") -> dict[str, Any]:
    answer = client.post("/v1/check", json={"license": serial, "entitlement": entitlement})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _signed_head(owner: httpx.Client, serial: str) -> dict[str, Any]:
    """A check once the ledger's head is signed: no checkpoint is due any more, so the
    generation stands until the next change (a checkpoint moves it too)."""
    deadline = time.monotonic() + 10
    while True:
        answer = _check(owner, serial)
        if answer["checkpoint"]["size"] == ledger_size(owner):
            return answer
        assert time.monotonic() < deadline, "the head was not signed"
        time.sleep(0.1)


def test_a_license_checked_again_is_answered_from_memory_until_it_changes(
    server: Server,
) -> None:
    with server.client(server.owner_key()) as owner:
        apply_example_catalog(owner)
        serial = issue_license(owner)["serial"]
        first = _signed_head(owner, serial)
        before = _lookups(server)
        again = [_check(owner, serial) for _ in range(5)]
        after = _lookups(server)
        assert all(answer == first for answer in again)
        # Each check looks up its key and its license: both found in memory.
        assert after.get("hit", 0) - before.get("hit", 0) == 10, (before, after)
        assert after.get("miss", 0) == before.get("miss", 0), (before, after)

        revoked = owner.post(f"/v1/licenses/{serial}/revoke", json={"reason": "chargeback"})
        assert revoked.status_code == 200, revoked.text
        answer = _check(owner, serial)
        assert (answer["allowed"], answer["reason"]) == (False, "revoked")
        assert answer["checkpoint"]["size"] >= first["checkpoint"]["size"]


def test_a_revoked_api_key_is_refused_at_its_next_check(server: Server) -> None:
    with server.client(server.owner_key()) as owner:
        apply_example_catalog(owner)
        serial = issue_license(owner)["serial"]
        made = owner.post("/v1/apikeys", json={"role": "agent", "name": "app"})
        assert made.status_code == 201, made.text
        key = made.json()
        with server.client(key["key"]) as app:
            _check(app, serial)
            _check(app, serial)  # now kept in memory
            gone = owner.delete(f"/v1/apikeys/{key['id']}")
            assert gone.status_code == 200, gone.text
            refused = app.post("/v1/check", json={"license": serial, "entitlement": "seats"})
            assert refused.status_code == 401, refused.text


def test_every_change_to_a_watched_table_moves_the_accounts_generation(
    server: Server, store_url: str
) -> None:
    with server.client(server.owner_key()) as owner:
        apply_example_catalog(owner)
        issue_license(owner)
    engine = create_engine(store_url)
    store = SqlStore(engine)
    try:
        legacy = t.projection["legacy_ids"]
        row = {column.name: "x" for column in legacy.columns} | {"account": ACCOUNT}
        before = store.generation(ACCOUNT)
        with engine.begin() as conn:
            conn.execute(sa.insert(legacy).values(row))
        inserted = store.generation(ACCOUNT)
        assert inserted != before
        for table in _watched():
            moved_from = store.generation(ACCOUNT)
            with engine.begin() as conn:
                changed = conn.execute(
                    sa.text(f"UPDATE {table} SET account = account WHERE account = :a"),
                    {"a": ACCOUNT},
                )
            assert changed.rowcount > 0, table
            assert store.generation(ACCOUNT) != moved_from, f"an update of {table}"
        other = store.generation("another-account")
        moved_from = store.generation(ACCOUNT)
        with engine.begin() as conn:
            conn.execute(sa.delete(legacy).where(legacy.c.account == ACCOUNT))
        assert store.generation(ACCOUNT) != moved_from, "a delete"
        assert store.generation("another-account") == other, "another account's moved"
    finally:
        engine.dispose()


def test_a_row_edited_behind_the_server_is_refused_at_the_next_check(
    server: Server, store_url: str
) -> None:
    with server.client(server.owner_key()) as owner:
        apply_example_catalog(owner)
        serial = issue_license(owner)["serial"]
        revoked = owner.post(f"/v1/licenses/{serial}/revoke", json={"reason": "fraud"})
        assert revoked.status_code == 200, revoked.text
        assert _check(owner, serial)["reason"] == "revoked"
        assert _check(owner, serial)["reason"] == "revoked"  # kept in memory now
        engine = create_engine(store_url)
        try:
            with engine.begin() as conn:
                conn.execute(
                    sa.text("UPDATE proj_licenses SET status = 'active' WHERE serial = :s"),
                    {"s": serial},
                )
        finally:
            engine.dispose()
        # SQLite: the next check reads the counter. PostgreSQL: the server learns of the
        # edit from the trigger's notification, some milliseconds after the commit;
        # until then it answers from the row it proved, never from the edited one.
        deadline = time.monotonic() + (0.0 if store_url.startswith("sqlite") else 1.0)
        while True:
            after = owner.post("/v1/check", json={"license": serial, "entitlement": "seats"})
            if after.status_code == 503:
                break
            assert (after.status_code, after.json()["reason"]) == (200, "revoked"), after.text
            assert time.monotonic() < deadline, "the edited row was not refused in time"
            time.sleep(0.01)
        assert after.json()["type"].endswith("/state_unverified")


def test_a_batch_of_kept_licenses_is_answered_from_memory_until_one_changes(
    server: Server,
) -> None:
    with server.client(server.owner_key()) as owner:
        apply_example_catalog(owner)
        serials = [issue_license(owner)["serial"] for _ in range(3)]
        batch = {"checks": [{"license": s, "entitlement": "seats"} for s in serials]}
        _signed_head(owner, serials[0])
        first = owner.post("/v1/check/batch", json=batch)
        assert first.status_code == 200, first.text
        before = _lookups(server)
        again = owner.post("/v1/check/batch", json=batch)
        after = _lookups(server)
        assert again.json() == first.json()
        assert after.get("hit", 0) - before.get("hit", 0) == 3, (before, after)
        assert after.get("miss", 0) == before.get("miss", 0), (before, after)

        revoked = owner.post(f"/v1/licenses/{serials[1]}/revoke", json={"reason": "refund"})
        assert revoked.status_code == 200, revoked.text
        answers = owner.post("/v1/check/batch", json=batch).json()["results"]
        assert [a["reason"] for a in answers] == ["ok", "revoked", "ok"]
        bad = owner.post(
            "/v1/check/batch", json={"checks": [*batch["checks"], {"license": serials[0]}]}
        )
        assert bad.status_code == 400, bad.text
        assert bad.json()["field"] == "checks[3].entitlement"
