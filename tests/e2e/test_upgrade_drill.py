"""The upgrade drill, from every release of RELEASES.toml: the release, built from its
commit into a virtualenv of its own, serves a fresh data dir through the HTTP API;
then this code starts on the same data dir (migrating on start, when the release's
schema is behind) and must serve every license, decision and token unchanged, with a
ledger that verifies, a state digest that a rebuild reproduces, and the checkpoints the
release signed kept as they were under the ones this code signs after them. The
releases that kept customers' data keys in files are also run as two servers on one
PostgreSQL database, each reading the other's customers once upgraded.

Each release is built once per test session: ``git worktree add`` of its commit,
``pip install --no-deps`` of it into a new venv whose dependencies are this venv's
(a ``.pth`` line naming this venv's site-packages, read after the venv's own, so the
old ``tenure`` package wins and the libraries are the ones the suite already has).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

import tenure
from support.api import apply_example_catalog
from support.cli import subprocess_env
from support.postgres import pg_url
from support.releases import OldRelease, build_release, release_id, releases, run
from support.server import Server, start_server
from support.shop import ACCOUNT
from support.sqlite import raw_sqlite
from tenure.crypto import jws
from tenure.durability.upgrades import schema_head

TYP = "tenure-offline+jwt"
ISSUER = "tenure.localhost/ledger/default"
PLANS = [
    ("studio", "studio-basic"),
    ("studio", "studio-pro"),
    ("studio", "studio-lifetime"),
    ("render-farm", "farm-burst"),
]
LICENSES = 20
ENTITLEMENTS = ["feature:export-pdf", "feature:gpu-nodes", "seats", "feature:teleportation"]


@pytest.fixture(scope="session", params=releases(), ids=release_id)
def old_release(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> OldRelease:
    """Each release of RELEASES.toml, built from its commit into its own venv (once a
    session)."""
    release: dict[str, Any] = request.param
    return build_release(release, tmp_path_factory.mktemp(f"release-{release['version']}"))


@dataclass
class Recorded:
    licenses: dict[str, dict[str, Any]]
    decisions: dict[tuple[str, str, str], dict[str, Any]]
    tokens: list[str]
    keys: dict[str, str]


@pytest.fixture
def running() -> Iterator[list[Server]]:
    """Servers started by the test, stopped at its end whatever happens."""
    servers: list[Server] = []
    yield servers
    for server in servers:
        server.stop()


def license_client(server: Server, key: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"License {key}"})


def fill(server: Server) -> dict[str, str]:
    """A catalog, customers, licenses (one suspended, one revoked), activations; returns
    every license's key by serial."""
    keys: dict[str, str] = {}
    with server.client(server.owner_key()) as owner:
        apply_example_catalog(owner)
        customers = [
            owner.post(
                "/v1/customers", json={"name": f"Customer {n}", "email": f"c{n}@example.com"}
            ).json()["id"]
            for n in range(5)
        ]
        for n in range(LICENSES):
            product, plan = PLANS[n % len(PLANS)]
            body = {"product": product, "plan": plan, "customer": customers[n % 5]}
            issued = owner.post("/v1/licenses", json={**body, "order_ref": f"order-{n}"})
            assert issued.status_code == 201, issued.text
            keys[issued.json()["serial"]] = issued.json()["key"]
        serials = list(keys)
        for action, serial in (("suspend", serials[0]), ("revoke", serials[1])):
            changed = owner.post(f"/v1/licenses/{serial}/{action}", json={"reason": "drill"})
            assert changed.status_code == 200, changed.text
    return keys


def mint_tokens(server: Server, keys: dict[str, str]) -> list[str]:
    """Activate a device on each studio-pro and studio-lifetime license and mint a token."""
    tokens = []
    with server.client(server.owner_key()) as owner:
        for serial, key in keys.items():
            plan = owner.get(f"/v1/licenses/{serial}").json()
            if plan["status"] != "active" or plan["plan"] not in ("studio-pro", "studio-lifetime"):
                continue
            with license_client(server, key) as app:
                device = {"fingerprint": f"device-{serial}"}
                activated = app.post(f"/v1/licenses/{serial}/activations", json=device)
                assert activated.status_code == 201, activated.text
                minted = app.post("/v1/tokens", json={"license": serial, **device})
                assert minted.status_code == 201, minted.text
                tokens.append(minted.json()["token"])
    assert len(tokens) >= 5
    return tokens


def observe(server: Server, keys: dict[str, str]) -> tuple[dict[str, Any], dict[Any, Any]]:
    """Every license's ``GET`` body and every decision (by serial as owner, by key as the
    license), without the checkpoint a decision names (it moves as the ledger grows)."""
    licenses, decisions = {}, {}
    with server.client(server.owner_key()) as owner:
        for serial, key in keys.items():
            got = owner.get(f"/v1/licenses/{serial}")
            assert got.status_code == 200, got.text
            licenses[serial] = got.json()
            with license_client(server, key) as app:
                for entitlement in ENTITLEMENTS:
                    for how, client, name in (("owner", owner, serial), ("license", app, key)):
                        answer = client.post(
                            "/v1/check", json={"license": name, "entitlement": entitlement}
                        )
                        assert answer.status_code == 200, answer.text
                        body = answer.json()
                        body.pop("checkpoint")
                        decisions[serial, entitlement, how] = body
    return licenses, decisions


def read_customers(server: Server, licenses: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """(name, email) of every customer the licenses name, as ``GET`` shows it."""
    shown = {}
    with server.client(server.owner_key()) as owner:
        for customer in sorted({body["customer"] for body in licenses.values()}):
            got = owner.get(f"/v1/customers/{customer}")
            assert got.status_code == 200, got.text
            shown[customer] = (got.json()["name"], got.json()["email"])
    return shown


def key_files(data_dir: Path) -> list[Path]:
    """The data key files a release that kept them on disk (0.2.0) wrote."""
    return sorted((data_dir / "datakeys").rglob("*.key"))


def cli(python: Path, *args: str, **env: str) -> Any:
    return json.loads(run(python, "-m", "tenure", *args, "--output", "json", **env))


def signed_checkpoints(data_dir: Path) -> list[str]:
    """The signed checkpoints (C2SP notes) stored in ``data_dir`` for the default
    account, smallest size first, read with plain sqlite3 (any release's schema)."""
    with closing(raw_sqlite(data_dir)) as db:
        query = "SELECT note FROM ledger_checkpoints WHERE account = ? ORDER BY size"
        return [note for (note,) in db.execute(query, (ACCOUNT,))]


def reinstate(server: Server, serial: str) -> None:
    with server.client(server.owner_key()) as owner:
        done = owner.post(f"/v1/licenses/{serial}/reinstate", json={"reason": "drill"})
        assert done.status_code == 200, done.text
        assert owner.get(f"/v1/licenses/{serial}").json()["status"] == "active"


def test_an_upgrade_from_each_release_keeps_licenses_decisions_and_tokens(
    old_release: OldRelease, tmp_path: Path, running: list[Server]
) -> None:
    data_dir, logs = tmp_path / "data", tmp_path / "logs"
    logs.mkdir()
    old = start_server(data_dir, logs, python=old_release.python)
    running.append(old)
    keys = fill(old)
    tokens = mint_tokens(old, keys)
    licenses, decisions = observe(old, keys)
    assert {d["reason"] for d in decisions.values()} >= {"ok", "not_entitled", "suspended"}
    people = read_customers(old, licenses)
    assert len(people) == 5
    assert all(name and email for name, email in people.values()), people
    sealed_on_disk = key_files(data_dir)
    # Schemas 0007 to 0012 (0.2.0) kept the data keys in files; 0013 in the database.
    assert bool(sealed_on_disk) == ("0007" <= old_release.database_schema < "0013")
    old.stop()
    old_digest = cli(old_release.python, "state", "digest", "--data-dir", str(data_dir))
    old_checkpoints = signed_checkpoints(data_dir)
    assert old_checkpoints

    here = Path(sys.executable)
    status = cli(here, "db", "status", "--data-dir", str(data_dir))
    assert status["current"] == old_release.database_schema
    assert status["head"] == schema_head()

    if status["upgrade_pending"]:
        refused = subprocess.run(
            [here, "-m", "tenure", "serve", "--data-dir", str(data_dir), "--port", "0"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env=subprocess_env(TENURE_UPGRADE_ON_START="false"),
        )
        assert refused.returncode == 1
        line = refused.stderr.strip().splitlines()[-1]
        assert line == (
            f"error: database schema {old_release.database_schema} is behind "
            f"{schema_head()}: run tenure db upgrade"
        )

    new = start_server(data_dir, logs, python=here)  # migrates on start
    running.append(new)
    ready = httpx.get(f"{new.url}/readyz").json()
    assert (ready["schema"], ready["version"]) == (schema_head(), tenure.__version__)
    assert observe(new, keys) == (licenses, decisions)
    # Customers read the same; the data keys a release kept in files are now in the
    # database (docs/personal-data.md), and the files are gone.
    assert read_customers(new, licenses) == people
    if sealed_on_disk:
        assert key_files(data_dir) == []
    jwks = jws.keys_from_jwks(httpx.get(f"{new.url}/.well-known/jwks.json").json())
    for token in tokens:
        claims = jws.verify(token, jwks, typ=TYP, now=time.time(), issuer=ISSUER)
        assert claims["sub"] in keys or claims.get("serial") in keys, claims
    new.stop()

    verified = cli(here, "ledger", "verify", "--data-dir", str(data_dir))
    assert verified["ok"] is True
    digest = cli(here, "state", "digest", "--data-dir", str(data_dir))
    assert (digest["size"], digest["digest"]) == (old_digest["size"], old_digest["digest"])
    rebuilt = cli(here, "state", "rebuild", "--data-dir", str(data_dir))
    assert rebuilt["before"] == rebuilt["after"] == digest["digest"]

    suspended = next(iter(keys))  # fill() suspended the first license
    again = start_server(data_dir, logs, python=here)
    running.append(again)
    reinstate(again, suspended)
    again.stop()
    checkpoints = signed_checkpoints(data_dir)
    assert checkpoints[: len(old_checkpoints)] == old_checkpoints
    assert len(checkpoints) > len(old_checkpoints)
    # The release's checkpoints carry no state line; every one signed since does, and
    # the newest states the root of the rows as they stand.
    assert not any("\ntenure-state " in note for note in old_checkpoints)
    new_notes = checkpoints[len(old_checkpoints) :]
    assert all(note.split("\n")[3].startswith("tenure-state ") for note in new_notes)
    state = cli(here, "state", "root", "--data-dir", str(data_dir))
    assert state["consistent"] is True
    assert new_notes[-1].split("\n")[3] == f"tenure-state {state['root']}"
    verified = cli(here, "ledger", "verify", "--data-dir", str(data_dir))
    assert (verified["ok"], verified["checkpoints"]) == (True, len(checkpoints))
    assert verified["state_roots"] == len(new_notes)


KEY_FILE_RELEASES = [r for r in releases() if "0007" <= r["database_schema"] < "0013"]
"""The releases that kept customers' data keys in files of each server's data dir."""


@pytest.mark.parametrize("old_release", KEY_FILE_RELEASES, indirect=True, ids=release_id)
def test_two_servers_of_a_key_file_release_read_each_others_customers_once_upgraded(
    old_release: OldRelease, tmp_path: Path, running: list[Server], pg_database: str
) -> None:
    """The issue as found: two servers of the release on one PostgreSQL database, set
    up as its README said (the second with a copy of ``master.key`` and ``keys/``),
    each kept the keys of the customers it created in its own data dir, so each
    showed the other's customers as erased. Started once on this code, each moves its
    key files into the database, and both read every customer."""
    url, logs = pg_url(pg_database), tmp_path / "logs"
    logs.mkdir()
    dirs = [tmp_path / "tenure-1", tmp_path / "tenure-2"]
    made: dict[str, str] = {}
    olds = []
    for n, data_dir in enumerate(dirs):
        if n:
            data_dir.mkdir(mode=0o700)
            shutil.copy2(dirs[0] / "master.key", data_dir / "master.key")
            shutil.copytree(dirs[0] / "keys", data_dir / "keys")
        olds.append(start_server(data_dir, logs, "--db", url, python=old_release.python))
        running.append(olds[-1])
        with olds[-1].client(start_key(dirs)) as owner:
            body = {"name": f"Person {n}", "email": f"p{n}@example.com"}
            created = owner.post("/v1/customers", json=body)
            assert created.status_code == 201, created.text
            made[created.json()["id"]] = body["name"]
    first_customer = next(iter(made))
    with olds[1].client(start_key(dirs)) as owner:  # the issue, reproduced
        assert owner.get(f"/v1/customers/{first_customer}").json()["erased"] is True
    for old, data_dir in zip(olds, dirs, strict=True):
        old.stop()
        assert key_files(data_dir), "the release keeps its keys in files"

    servers = [start_server(d, logs, "--db", url) for d in dirs]
    running.extend(servers)
    for server in servers:
        with server.client(start_key(dirs)) as owner:
            for customer, name in made.items():
                shown = owner.get(f"/v1/customers/{customer}").json()
                assert (shown["name"], shown["erased"]) == (name, False), server.url
    assert [key_files(d) for d in dirs] == [[], []]


def start_key(dirs: list[Path]) -> str:
    """The bootstrap owner key the first server wrote."""
    return (dirs[0] / "bootstrap-owner.key").read_text(encoding="utf-8").strip()
