"""A PostgreSQL restart under load: 503 with ``Retry-After`` while it is down, never a
500, nothing acknowledged lost, and the server recovers by itself.

The test restarts a PostgreSQL cluster of its own (``initdb`` in a temporary
directory, ``pg_ctl`` on a free port), never the shared server other tests use: the
suite runs on two workers, and a restart of the shared server would break whatever
PostgreSQL test the other worker is running.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import pytest
import sqlalchemy as sa

from support.cli import subprocess_env, tenure_executable
from support.required import missing_tool
from support.server import HOST, Server, free_port, running_server

WRITERS = 4
DOWN_SECONDS = 2.0
RECOVERY_TIMEOUT = 30.0
PROBLEM = "application/problem+json"


def _pg_program(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None
    )
    if found is None:
        missing_tool(f"PostgreSQL's {name} is not installed (apt-get install postgresql)")
    return found


@dataclass
class Cluster:
    """A private PostgreSQL cluster: started, stopped and dropped by this test."""

    base: Path
    port: int

    def new_database(self) -> str:
        """The URL of a new, empty database of this cluster."""
        name = f"tenure_{secrets.token_hex(4)}"
        dsn = f"host={HOST} port={self.port} user=postgres dbname=postgres"
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@{HOST}:{self.port}/{name}"

    def pg_ctl(self, *args: str) -> None:
        data, log = str(self.base / "data"), str(self.base / "log")
        _as_postgres(_pg_program("pg_ctl"), "-D", data, "-l", log, "-w", *args)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.base} -c listen_addresses={HOST}"
        self.pg_ctl("-o", options, "start")

    def stop(self) -> None:
        self.pg_ctl("-m", "fast", "stop")

    def restart(self) -> None:
        self.pg_ctl("-m", "fast", "restart")


def _as_postgres(*command: str) -> None:
    """Run ``command`` as the ``postgres`` user when we are root (initdb and postgres
    refuse to run as root)."""
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    done = subprocess.run(
        [*prefix, *command], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, f"{command}: {done.stdout}\n{done.stderr}"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    # Under /tmp, not pytest's tmp_path: the postgres user must be able to reach it.
    base = Path(tempfile.mkdtemp(prefix="tenure-pg-"))
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    initdb = _pg_program("initdb")
    _as_postgres(initdb, "-D", str(base / "data"), "-U", "postgres", "--auth=trust", "-E", "UTF8")
    running = Cluster(base, free_port())
    running.start()
    try:
        yield running
    finally:
        try:
            running.pg_ctl("-m", "immediate", "stop")
        finally:
            shutil.rmtree(base, ignore_errors=True)


@dataclass
class Load:
    """Customer creations and reads sent until ``stop``, with what each was answered."""

    server: Server
    key: str
    stop: threading.Event = field(default_factory=threading.Event)
    writes: list[tuple[float, httpx.Response | Exception]] = field(default_factory=list)
    reads: list[tuple[float, httpx.Response | Exception]] = field(default_factory=list)
    created: list[str] = field(default_factory=list)

    def write(self, worker: int) -> None:
        with self.server.client(self.key) as api:
            n = 0
            while not self.stop.is_set():
                n += 1
                body = {"name": f"W{worker}", "email": f"w{worker}-{n}@example.test"}
                answer = _send(api, "POST", "/v1/customers", body)
                self.writes.append((time.monotonic(), answer))
                if isinstance(answer, httpx.Response) and answer.status_code == 201:
                    self.created.append(answer.json()["id"])

    def read(self) -> None:
        with self.server.client(self.key) as api:
            while not self.stop.is_set():
                self.reads.append((time.monotonic(), _send(api, "GET", "/v1/licenses", None)))
                time.sleep(0.01)


def _send(api: httpx.Client, method: str, url: str, body: object) -> httpx.Response | Exception:
    try:
        return api.request(method, url, json=body)
    except httpx.HTTPError as exc:
        return exc


def _statuses(answers: list[tuple[float, httpx.Response | Exception]]) -> dict[object, int]:
    counts: dict[object, int] = {}
    for _, answer in answers:
        status = answer.status_code if isinstance(answer, httpx.Response) else repr(answer)
        counts[status] = counts.get(status, 0) + 1
    return counts


def _wait_for_writes(load: Load, after: float, count: int) -> None:
    deadline = time.monotonic() + RECOVERY_TIMEOUT
    while time.monotonic() < deadline:
        done = [a for t, a in list(load.writes) if t > after and _ok(a, 201)]
        if len(done) >= count:
            return
        time.sleep(0.1)
    pytest.fail(f"writes did not recover within {RECOVERY_TIMEOUT} s: {_statuses(load.writes)}")


def _ok(answer: httpx.Response | Exception, status: int) -> bool:
    return isinstance(answer, httpx.Response) and answer.status_code == status


@pytest.fixture
def database(cluster: Cluster) -> str:
    return cluster.new_database()


@pytest.fixture
def served(database: str, tmp_path: Path) -> Iterator[Server]:
    logs = tmp_path / "logs"
    logs.mkdir()
    # No scheduled checkpoint: the writer is idle between the test's requests, so the
    # connection it keeps is the one the restart kills.
    idle = {"TENURE_CHECKPOINT_INTERVAL_SECONDS": "3600"}
    with running_server(tmp_path / "data", logs, "--db", database, **idle) as server:
        yield server


def test_a_database_restart_answers_503_then_recovers(
    cluster: Cluster, database: str, served: Server
) -> None:
    load = Load(served, served.owner_key())
    threads = [threading.Thread(target=load.write, args=(w,)) for w in range(WRITERS)]
    threads.append(threading.Thread(target=load.read))
    for thread in threads:
        thread.start()
    try:
        _wait_for_writes(load, 0.0, 20)
        cluster.stop()
        time.sleep(DOWN_SECONDS)
        restarted = time.monotonic()
        cluster.start()
        _wait_for_writes(load, restarted, 20)
    finally:
        load.stop.set()
        for thread in threads:
            thread.join(30)

    for answers, ok in ((load.writes, 201), (load.reads, 200)):
        statuses = _statuses(answers)
        assert set(statuses) <= {ok, 503}, statuses  # no 500, no dropped connection
        assert statuses.get(503), f"the outage was never answered with 503: {statuses}"
    for _, answer in load.writes + load.reads:
        if isinstance(answer, httpx.Response) and answer.status_code == 503:
            assert answer.headers["content-type"] == PROBLEM
            assert answer.json()["type"].endswith("/storage_unavailable"), answer.text
            assert answer.headers["retry-after"].isdigit(), answer.headers

    _assert_nothing_acknowledged_was_lost(served, load.created, database)


def _assert_nothing_acknowledged_was_lost(server: Server, created: list[str], url: str) -> None:
    with server.client(server.owner_key()) as api:
        missing = [c for c in created if api.get(f"/v1/customers/{c}").status_code != 200]
    assert not missing, f"{len(missing)} acknowledged customers are gone: {missing[:5]}"
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            stored = conn.scalar(sa.text("SELECT count(*) FROM proj_customers"))
    finally:
        engine.dispose()
    assert stored is not None
    assert stored >= len(created)
    verified = subprocess.run(
        [tenure_executable(), "ledger", "verify", "--db", url, "--data-dir", str(server.data_dir)],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_a_restart_between_requests_costs_no_request(cluster: Cluster, served: Server) -> None:
    """The ledger writer keeps its connection between batches; after a restart that
    connection is dead. Nothing of the next batch reached a commit on it, so the
    writer retries on a new connection instead of answering 503."""
    with served.client(served.owner_key()) as api:
        body = {"name": "Before", "email": "before@example.test"}
        assert api.post("/v1/customers", json=body).status_code == 201
        cluster.restart()
        after = api.post("/v1/customers", json={"name": "After", "email": "after@example.test"})
        assert after.status_code == 201, after.text
        assert api.get(f"/v1/customers/{after.json()['id']}").status_code == 200
