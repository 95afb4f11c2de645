"""File modes (docs/hardening.md, "Files on disk"): a fresh ``tenure serve`` creates
its data directory 0700 and every database, sidecar, key and ``file://`` site file
0600 (directories 0700), whatever the umask it was started with; and it warns, one
log line per path, about an existing one that is wider."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from support.cli import subprocess_env, tenure_executable
from support.server import Server, running_server, seed_data_dir
from tenure.app.runtime import Runtime
from tenure.config import Settings
from tenure.durability.sites import open_site
from tenure.service.apikeys import ensure_bootstrap_owner
from tenure.store.engine import write_transaction

SHIP_WAIT_SECONDS = 20.0
OPEN_UMASK = 0o022
"""The usual umask: without care, files would be 0644 and directories 0755."""


@pytest.fixture(autouse=True)
def usual_umask() -> object:
    """Run the servers and commands of these tests under the usual umask."""
    previous = os.umask(OPEN_UMASK)
    try:
        yield None
    finally:
        os.umask(previous)


def modes_under(root: Path) -> dict[Path, int]:
    """Every path under ``root`` (``root`` included) and its permission bits."""
    found = {root: stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        found[path] = stat.S_IMODE(path.lstat().st_mode)
    return found


def too_open(root: Path) -> dict[str, str]:
    """The paths under ``root`` that a group or others may use at all."""
    return {
        str(path.relative_to(root.parent)): oct(mode)
        for path, mode in modes_under(root).items()
        if mode & 0o077
    }


def wait_for_shipping(server: Server, site: Path) -> None:
    deadline = time.monotonic() + SHIP_WAIT_SECONDS
    while time.monotonic() < deadline:
        if any(site.rglob("*checkpoint*")) and any(site.rglob("*snapshot*")):
            return
        time.sleep(0.2)
    pytest.fail(f"nothing shipped to {site}: {sorted(site.rglob('*'))}\n{server.logs()}")


def test_a_fresh_server_creates_private_directories_and_files(tmp_path: Path) -> None:
    data, site = tmp_path / "data", tmp_path / "site"
    with running_server(
        data,
        tmp_path,
        TENURE_SITES=site.as_uri(),
        TENURE_SNAPSHOT_EVERY_EVENTS="1",
        TENURE_SHIP_INTERVAL_SECONDS="0.2",
    ) as server:
        with server.client(server.owner_key()) as owner:
            made = owner.post("/v1/customers", json={"name": "Ada", "email": "a@example.com"})
            assert made.status_code == 201, made.text
        wait_for_shipping(server, site)
        modes = modes_under(data)
        assert modes[data] == 0o700
        for name in ("tenure.db", "tenure.db-wal", "tenure.db-shm", "master.key"):
            assert modes[data / name] == 0o600, name
        assert any(p.parent.name == "keys" for p in modes), sorted(modes)
        assert any(p.suffix == ".checkpoint" for p in modes), sorted(modes)
        assert too_open(data) == {}
        assert too_open(site) == {}
        assert "wider than" not in server.stderr()


def test_cli_commands_create_private_files_too(tmp_path: Path) -> None:
    data = tmp_path / "seeded"
    seed_data_dir(data, events=50)
    assert too_open(data) == {}


def cli(*args: str) -> None:
    done = subprocess.run(
        [tenure_executable(), *args],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_shipped_snapshotted_and_restored_files_are_private(tmp_path: Path) -> None:
    data, site, restored = tmp_path / "data", tmp_path / "site", tmp_path / "restored"
    seed_data_dir(data, events=50)
    cli("ship", "--data-dir", str(data), "--site", site.as_uri())
    cli("snapshot", "create", "--data-dir", str(data), "--site", site.as_uri())
    into = f"sqlite:///{restored / 'tenure.db'}"
    cli("restore", "--site", site.as_uri(), "--into", into, "--data-dir", str(data))
    assert (restored / "tenure.db").exists()
    assert too_open(site) == {}
    assert too_open(restored) == {}


def warnings_of(server: Server) -> dict[str, str]:
    """The file-mode warnings of the server's log: path -> message."""
    found = {}
    for raw in server.stderr().splitlines():
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if line.get("logger") == "tenure.files" and line.get("level") == "warning":
            found[str(line["path"])] = str(line["message"])
    return found


def test_a_server_warns_once_per_path_wider_than_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    seed_data_dir(data, events=20)
    data.chmod(0o755)
    (data / "tenure.db").chmod(0o644)
    (data / "master.key").chmod(0o640)
    with running_server(data, tmp_path) as server:
        warned = warnings_of(server)
        assert set(warned) == {str(data), str(data / "tenure.db"), str(data / "master.key")}
        assert "0755" in warned[str(data)]
        assert "0700" in warned[str(data)]
        assert "0644" in warned[str(data / "tenure.db")]
        # Warned, not changed: an operator may have widened them on purpose.
        assert stat.S_IMODE((data / "tenure.db").stat().st_mode) == 0o644


def test_the_modes_do_not_depend_on_the_umask(tmp_path: Path) -> None:
    """In a process that kept the usual umask (an application embedding Tenure), the
    modes are set where the files are made."""
    data = tmp_path / "nested" / "data"
    runtime = Runtime.open(Settings(data_dir=data, encrypt_personal_data=False))
    try:
        key = ensure_bootstrap_owner(runtime.store, data, "default")
        assert key is not None
        with write_transaction(runtime.store.engine) as conn:
            conn.execute(sa.text("CREATE TABLE scratch (x INTEGER)"))
        site = open_site((tmp_path / "site").as_uri())
        site.put("default/segments/000001", b"segment")
        assert (data / "tenure.db-wal").exists()
        assert too_open(tmp_path) == {}
    finally:
        runtime.close()
