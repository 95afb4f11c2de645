"""Several servers on one PostgreSQL database, set up exactly as README "Moving to
PostgreSQL" says, share customers' personal data: two ``tenure serve`` processes with
data dirs of their own (the second holds only a copy of the first's ``master.key``
and ``keys/``), a customer created on each, both readable on the other, and an
erasure on one seen at once on the other. No data key exists on either disk."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from support.postgres import pg_url
from support.server import Server, running_server


@pytest.fixture
def two_servers(pg_database: str, tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    """README: the first server creates the schema and the keys; the second gets a
    copy of ``master.key`` and ``keys/`` in a data dir of its own."""
    url = pg_url(pg_database)
    first_dir, second_dir, logs = tmp_path / "tenure-1", tmp_path / "tenure-2", tmp_path / "logs"
    logs.mkdir()
    with ExitStack() as stack:
        first = stack.enter_context(running_server(first_dir, logs, "--db", url))
        second_dir.mkdir(mode=0o700)
        shutil.copy2(first_dir / "master.key", second_dir / "master.key")
        shutil.copytree(first_dir / "keys", second_dir / "keys")
        second = stack.enter_context(running_server(second_dir, logs, "--db", url))
        yield first, second


def test_a_customer_created_on_either_server_is_readable_on_the_other(
    two_servers: tuple[Server, Server],
) -> None:
    first, second = two_servers
    key = first.owner_key()
    with first.client(key) as one, second.client(key) as two:
        ada = {"name": "Ada Lovelace", "email": "ada@example.com", "external_id": "crm-ada"}
        bob = {"name": "Bob Babbage", "email": "bob@example.com", "external_id": "crm-bob"}
        made_on_first = one.post("/v1/customers", json=ada)
        made_on_second = two.post("/v1/customers", json=bob)
        assert made_on_first.status_code == 201, made_on_first.text
        assert made_on_second.status_code == 201, made_on_second.text
        for client, made, wanted in ((two, made_on_first, ada), (one, made_on_second, bob)):
            shown = client.get(f"/v1/customers/{made.json()['id']}")
            assert shown.status_code == 200, shown.text
            body = shown.json()
            assert (body["name"], body["email"], body["erased"]) == (
                wanted["name"],
                wanted["email"],
                False,
            )
        # The same external id on the other server finds the customer (its sealed
        # fields opened there to compare) rather than conflicting.
        again = one.post("/v1/customers", json=bob)
        assert (again.status_code, again.json()["id"]) == (200, made_on_second.json()["id"])

        bob_id = made_on_second.json()["id"]
        erased = one.post(f"/v1/customers/{bob_id}/erase", json={"reason": "customer asked"})
        assert erased.status_code == 200, erased.text
        assert erased.json()["key_destroyed"] is True
        shown = two.get(f"/v1/customers/{bob_id}").json()
        assert (shown["name"], shown["email"], shown["erased"]) == (None, None, True)
    for server in (first, second):
        assert not (server.data_dir / "datakeys").exists()
