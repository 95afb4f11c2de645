"""Several writers on one database: what "several ``tenure serve`` on one PostgreSQL"
promises.

- Two ledger writers signing at once never store two checkpoints of one size, and
  every stored checkpoint is of the final tree.
- On PostgreSQL each writer learns of the other's writes by ``LISTEN tenure_ledger``
  and keeps its rows between batches otherwise.
- Three real ``tenure serve`` processes on one PostgreSQL database, sharing one data
  dir (key store and sidecar), take issuances and activations from several clients
  at once: one gap-free ledger that verifies, one state digest, no seat limit
  exceeded across processes, every acknowledged issuance present exactly once.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from support.api import CATALOG, apply_example_catalog
from support.cli import subprocess_env, tenure_executable
from support.postgres import pg_url
from support.server import BOOTSTRAP_FILE, HOST, free_port
from support.shop import ACCOUNT, ACTOR, Runtimes, Shop
from tenure.domain.activations import ActivateDevice, SeatLimitReached, fingerprint_hash
from tenure.domain.commands import CreateCustomer, DefineProduct, IssueLicense, PublishPlan
from tenure.ledger.checkpoint import open_checkpoint
from tenure.ledger.merkle import tree_hash
from tenure.service.ledger import Ledger, SignRequest, Submission
from tenure.service.verify import verify_ledger
from tenure.store import ledger_records, notify, projection_rows
from tenure.store.engine import read_transaction, write_transaction

THREADS = 6
SERVERS = 3
STARTUP_TIMEOUT = 30.0
SERVE = (sys.executable, "-m", "tenure", "serve")


# ---------------------------------------------------------------- two writers, in process


@pytest.fixture
def pg_runtimes(pg_database: str) -> Iterator[Runtimes]:
    """Runtimes that close before ``pg_database`` is dropped (PostgreSQL only)."""
    opened = Runtimes()
    yield opened
    opened.close_all()


def test_two_writers_signing_at_once_never_store_two_checkpoints_of_one_size(
    pg_runtimes: Runtimes, tmp_path: Path, pg_database: str
) -> None:
    """Two processes' writers, each with its own data dir (and sidecar) holding a copy
    of one key store, sign the same account's growing tree at once."""
    url = pg_url(pg_database)
    first = pg_runtimes.open(tmp_path / "a", database_url=url, checkpoint_every_events=7)
    first.ledger_signer(ACCOUNT)  # makes the ledger key the copy then shares
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    second = pg_runtimes.open(tmp_path / "b", database_url=url, checkpoint_every_events=7)
    with first.ledger() as a, second.ledger() as b:
        Shop(a).catalog()
        barrier = threading.Barrier(THREADS)

        def client(n: int) -> int:
            writer = a if n % 2 else b
            barrier.wait()
            for i in range(12):
                writer.execute(Submission(ACCOUNT, CreateCustomer(None, None, f"s{n}-{i}"), ACTOR))
                # Both writers ask to sign the same heads at once; every answer is a success.
                writer.execute(SignRequest(ACCOUNT))
            return n

        with ThreadPoolExecutor(THREADS) as pool:
            assert sorted(pool.map(client, range(THREADS))) == list(range(THREADS))

    report = verify_ledger(first.store, ACCOUNT, first.sidecar)
    assert report.size == 2 + THREADS * 12
    verifier = first.ledger_signer(ACCOUNT)[1].verifier
    with read_transaction(first.store.engine) as conn:
        stored = ledger_records.all_checkpoints(conn, ACCOUNT)
        roots = {cp.size: sql_root(conn, cp.size) for cp in stored}
    assert len({cp.size for cp in stored}) == len(stored) > 1
    for cp in stored:
        opened = open_checkpoint(cp.note, [verifier])
        assert (opened.size, opened.root) == (cp.size, cp.root) == (cp.size, roots[cp.size])
    assert stored[-1].size == report.size


def sql_root(conn: sa.Connection, size: int) -> bytes:
    """The root of the stored tree's first ``size`` leaves."""
    return tree_hash(size, ledger_records.NodeReader(conn, ACCOUNT))


def _wait_for(predicate: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())


def test_a_postgresql_writer_keeps_its_rows_until_another_process_writes(
    pg_runtimes: Runtimes, data_dir: Path, pg_database: str
) -> None:
    runtimes = pg_runtimes
    url = pg_url(pg_database)
    first = runtimes.open(data_dir, database_url=url)
    second = runtimes.open(data_dir, database_url=url)
    with first.ledger() as a, second.ledger() as b:
        listener = notify.listener_of(first.store.engine)
        assert listener is not None
        assert listener.wait_until_listening(5.0)
        Shop(a).catalog()
        before = listener.marker()
        Shop(a).customer("own-write")  # its own announcements do not move its marker
        time.sleep(0.2)
        assert listener.marker() == before
        assert _cached_rows(a) > 0

        Shop(b).customer("elsewhere")

        assert _wait_for(lambda: listener.marker() != before)
        # A write transaction (rebuild, restore, accounts) is announced to everyone.
        moved = listener.marker()
        with write_transaction(second.store.engine):
            pass
        assert _wait_for(lambda: listener.marker() != moved)


def test_a_listener_that_loses_its_connection_reconnects_and_moves_its_marker(
    pg_runtimes: Runtimes, data_dir: Path, pg_database: str
) -> None:
    runtime = pg_runtimes.open(data_dir, database_url=pg_url(pg_database))
    with runtime.ledger() as writer:
        listener = notify.listener_of(runtime.store.engine)
        assert listener is not None
        assert listener.wait_until_listening(5.0)
        before = listener.marker()
        with runtime.store.engine.connect() as conn:
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND query LIKE 'LISTEN%'"
                )
            )
        assert _wait_for(lambda: listener.marker() != before, timeout=10.0)
        assert listener.wait_until_listening(10.0)
        Shop(writer).catalog()  # the writer works throughout


def test_a_writer_whose_notification_has_not_arrived_still_decides_on_current_rows(
    pg_runtimes: Runtimes, data_dir: Path, pg_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The window between another process's commit and its notification: the head
    moved under the account lock, so the writer reloads its rows anyway."""
    url = pg_url(pg_database)
    first = pg_runtimes.open(data_dir, database_url=url)
    second = pg_runtimes.open(data_dir, database_url=url)
    with first.ledger() as a, second.ledger() as b:
        listener = notify.listener_of(first.store.engine)
        assert listener is not None
        assert listener.wait_until_listening(5.0)

        def run(ledger: Ledger, command: Any) -> Any:
            return ledger.execute(Submission(ACCOUNT, command, ACTOR))

        run(a, DefineProduct("studio", "Studio", ["export-pdf"]))
        seats = {"feature:export-pdf": True, "seats": 2}
        run(a, PublishPlan("pro", "studio", seats, activation="floating"))
        customer = run(a, CreateCustomer(None, None, "c1")).result["customer"]
        serial = run(a, IssueLicense("studio", "pro", customer, "o1")).result["serial"]

        def device(n: int) -> ActivateDevice:
            return ActivateDevice(serial, fingerprint_hash(serial, f"device-{n}"), 600)

        run(a, device(0))  # the first writer now holds the license's seat rows
        frozen = listener.marker()
        monkeypatch.setattr(listener, "marker", lambda: frozen)  # no notification arrives
        run(b, device(1))
        with pytest.raises(SeatLimitReached):
            run(a, device(2))
    with read_transaction(first.store.engine) as conn:
        held = projection_rows.read_row(conn, ACCOUNT, "license_seats", (serial,))
    assert held is not None
    assert len(held["holders"]) == 2


def test_without_a_listener_a_postgresql_writer_reloads_in_every_batch(
    pg_runtimes: Runtimes, data_dir: Path, pg_database: str
) -> None:
    runtime = pg_runtimes.open(data_dir, database_url=pg_url(pg_database))
    with runtime.ledger() as writer:
        listener = notify.listener_of(runtime.store.engine)
        assert listener is not None
        notify.stop_listener(runtime.store.engine, listener)
        with runtime.store.engine.connect() as conn:
            assert ledger_records.external_write_marker(
                conn
            ) != ledger_records.external_write_marker(conn)
        Shop(writer).catalog()
        Shop(writer).customer("still-works")


def _cached_rows(ledger: Ledger) -> int:
    return sum(len(cached.rows) for cached in ledger._appender.cache.values())


# ---------------------------------------------------------------- three real servers


def _tenure(*args: str) -> Any:
    done = subprocess.run(
        [tenure_executable(), *args, "--output", "json"],
        env=subprocess_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"tenure {' '.join(args)}\n{done.stdout}\n{done.stderr}"
    return json.loads(done.stdout)


def _serve(url: str, data_dir: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*SERVE, "--data-dir", str(data_dir), "--db", url, "--port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=subprocess_env(),
        )
    base = f"http://{HOST}:{port}"
    deadline = time.monotonic() + STARTUP_TIMEOUT
    with httpx.Client(base_url=base, timeout=1.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"tenure serve exited with {process.returncode}\n{log.read_text()}")
            try:
                if client.get("/healthz").status_code == 200:
                    return process, base
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    process.kill()
    pytest.fail(f"tenure serve was not healthy within {STARTUP_TIMEOUT} s\n{log.read_text()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@pytest.fixture
def three_servers(pg_database: str, tmp_path: Path) -> Iterator[tuple[str, str, list[str]]]:
    """Three ``tenure serve`` on one fresh PostgreSQL database and one data dir:
    (database URL, owner key, base URLs). The first starts alone: it migrates, makes
    the keys and writes the bootstrap owner key; the others find them."""
    url = pg_url(pg_database)
    data_dir = tmp_path / "data"
    with ExitStack() as stack:
        bases = []
        for n in range(SERVERS):
            process, base = _serve(url, data_dir, tmp_path / f"serve-{n}.log")
            stack.callback(_stop, process)
            bases.append(base)
        key = (data_dir / BOOTSTRAP_FILE).read_text(encoding="utf-8").strip()
        yield url, key, bases


ISSUES_PER_CLIENT = 6
SEATS = 5  # studio-pro
DEVICES = 9


def test_three_servers_on_one_database_keep_one_ledger_and_every_limit(
    three_servers: tuple[str, str, list[str]], tmp_path: Path
) -> None:
    url, key, bases = three_servers
    auth = {"Authorization": f"Bearer {key}"}
    clients = [httpx.Client(base_url=b, headers=auth, timeout=30.0) for b in bases]
    try:
        applied = clients[0].post(
            "/v1/catalog",
            content=CATALOG.read_bytes(),
            headers={"Content-Type": "application/yaml"},
        )
        assert applied.status_code == 200, applied.text
        customer = clients[1].post("/v1/customers", json={"name": "Co", "email": "it@co.example"})
        assert customer.status_code == 201, customer.text
        customer_id = customer.json()["id"]
        barrier = threading.Barrier(THREADS)

        def issue(n: int) -> list[tuple[str, str]]:
            barrier.wait()
            issued = []
            for i in range(ISSUES_PER_CLIENT):
                idem = f"issue-{n}-{i}"
                body = {"product": "studio", "plan": "studio-pro", "customer": customer_id}
                body["order_ref"] = idem
                # The same request, retried on the next server, answers the same serial.
                answers = []
                for hop in (0, 1):
                    api = clients[(n + i + hop) % SERVERS]
                    done = api.post("/v1/licenses", json=body, headers={"Idempotency-Key": idem})
                    assert done.status_code in (200, 201), done.text
                    answers.append(done.json()["serial"])
                assert answers[0] == answers[1]
                issued.append((idem, answers[0]))
            return issued

        with ThreadPoolExecutor(THREADS) as pool:
            issued = [pair for batch in pool.map(issue, range(THREADS)) for pair in batch]
        serials = sorted({serial for _, serial in issued})
        assert len(serials) == len(issued) == THREADS * ISSUES_PER_CLIENT

        targets = serials[:4]
        barrier = threading.Barrier(THREADS)

        def activate(n: int) -> Counter[int]:
            barrier.wait()
            codes: Counter[int] = Counter()
            for d in range(DEVICES):
                serial = targets[(n + d) % len(targets)]
                api = clients[(n + d) % SERVERS]
                done = api.post(
                    f"/v1/licenses/{serial}/activations",
                    json={"fingerprint": f"device-{n}-{d}"},
                )
                assert done.status_code in (200, 201, 409), done.text
                codes[done.status_code] += 1
            return codes

        with ThreadPoolExecutor(THREADS) as pool:
            codes = sum(pool.map(activate, range(THREADS)), Counter[int]())
        assert codes[409] > 0, codes  # contention reached the limit

        views = []
        for api in clients:
            view = {}
            for serial in targets:
                listed = api.get(f"/v1/licenses/{serial}/activations")
                assert listed.status_code == 200, listed.text
                active = [x for x in listed.json()["activations"] if x["status"] == "active"]
                assert len(active) <= SEATS
                view[serial] = sorted(x["id"] for x in active)
            views.append(view)
        assert views[0] == views[1] == views[2]
        assert sum(len(ids) for ids in views[0].values()) == codes[201]
    finally:
        for api in clients:
            api.close()

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT subject, count(*) FROM ledger_events "
                    "WHERE account = :a AND type = 'license.issued' GROUP BY subject"
                ),
                {"a": ACCOUNT},
            ).all()
    finally:
        engine.dispose()
    assert sorted(rows) == [(serial, 1) for serial in serials]

    where = ["--db", url, "--data-dir", str(tmp_path / "data")]
    verified = _tenure("ledger", "verify", *where)
    digest = _tenure("state", "digest", *where)
    rebuilt = _tenure("state", "rebuild", *where)
    assert verified["size"] == digest["size"]
    assert rebuilt["after"] == rebuilt["before"] == digest["digest"]


def _check_on(base: str, key: str, serial: str) -> httpx.Response:
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}) as client:
        return client.post("/v1/check", json={"license": serial, "entitlement": "seats"})


def test_checks_on_one_server_prove_and_follow_the_writes_of_another(
    three_servers: tuple[str, str, list[str]],
) -> None:
    """Server B proves the rows server A changed (its state map follows A's signed
    checkpoints) and honours A's revocation without a restart."""
    _, key, (a, b, _) = three_servers
    with httpx.Client(base_url=a, headers={"Authorization": f"Bearer {key}"}) as owner:
        apply_example_catalog(owner)
        customer = owner.post("/v1/customers", json={"name": "Ada", "email": "a@example.com"})
        body = {"product": "studio", "plan": "studio-pro", "customer": customer.json()["id"]}
        issued = owner.post("/v1/licenses", json={**body, "order_ref": "multi-1"})
        assert issued.status_code == 201, issued.text
        serial = issued.json()["serial"]
        first = _check_on(b, key, serial)
        assert (first.status_code, first.json()["reason"]) == (200, "ok"), first.text
        revoked = owner.post(f"/v1/licenses/{serial}/revoke", json={"reason": "chargeback"})
        assert revoked.status_code == 200, revoked.text
    started = time.monotonic()
    while True:
        answer = _check_on(b, key, serial)
        assert answer.status_code == 200, answer.text
        if answer.json()["reason"] == "revoked":
            break
        assert time.monotonic() - started < 5, "server B still allows a revoked license"
        time.sleep(0.05)
