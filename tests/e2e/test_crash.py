"""Crash drill with real processes (issue 5).

One data dir; a real ``tenure serve`` subprocess on a free loopback port. A client
thread streams idempotent issuances (``order_ref`` and ``Idempotency-Key``
``crash-{i}``), retrying the same request on any transport error or 5xx until it is
acknowledged (200/201). The main thread SIGKILLs the server at random moments (seeded)
and restarts it on the same data dir, ``TENURE_CRASH_KILLS`` times (20 by default, 50
in the long bench). At the end, checked on the store and with the CLI: zero
acknowledged issuances lost, zero duplicates, ``ledger verify`` and ``audit verify``
pass, and the digest after ``state rebuild`` equals the live one. Acknowledged orders sent
again afterwards (with and without their key) append nothing.

Since each order is retried with its key until acknowledged, a kill between commit and
answer shows up as a retry answered with the stored answer; the summary counts those
(``landed_unacked``: the event's time precedes the attempt that failed).

Checkpoints are signed every few events (and every 0.2 s) so that kills also land
around checkpoint signing and the sidecar write.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from support.api import apply_example_catalog
from support.cli import subprocess_env, tenure_executable
from support.server import STOP_TIMEOUT, Server, free_port, wait_until_healthy

KILLS = int(os.environ.get("TENURE_CRASH_KILLS", "20"))
CRASH_SEED = int(os.environ.get("TENURE_CRASH_SEED", "20261129"))
KILL_DELAY = (0.05, 0.6)
"""Seconds between a restart becoming healthy and the next SIGKILL."""
ATTEMPT_TIMEOUT = 2.0
RETRY_PAUSE = 0.02
CLI_TIMEOUT = 120.0
DRILL_LIMIT = 30.0 + 5.0 * KILLS
"""The kill/restart loop fails past this many seconds instead of hanging CI."""
SERVER_ENV = {"TENURE_CHECKPOINT_EVERY_EVENTS": "5", "TENURE_CHECKPOINT_INTERVAL_SECONDS": "0.2"}
ACCOUNT = "default"
REPLAY_SAMPLE = 25
"""Acknowledged orders sent again after the drill (they must not append)."""


def _start(data_dir: Path, log_dir: Path, run: int) -> Server:
    """``python -m tenure serve`` on ``data_dir`` on a fresh port, in a session of its
    own (so teardown can kill its whole process group); waits for ``/healthz``."""
    port = free_port()
    stdout_path = log_dir / f"serve-{run:03d}-{port}.out"
    stderr_path = log_dir / f"serve-{run:03d}-{port}.err"
    command = [sys.executable, "-m", "tenure", "serve", "--data-dir", str(data_dir)]
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        process = subprocess.Popen(
            [*command, "--port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=subprocess_env(**SERVER_ENV),
            start_new_session=True,
        )
    server = Server(data_dir, port, process, stdout_path, stderr_path)
    try:
        wait_until_healthy(server)
    except BaseException:
        _kill_group(server)
        raise
    return server


def _kill_group(server: Server) -> None:
    """SIGKILL the server's process group (it leads its own session) and reap it."""
    if server.process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.process.pid, signal.SIGKILL)
    try:
        server.process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        server.process.kill()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tenure_executable(), *args],
        env=subprocess_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )


@dataclass
class Stream:
    """What the client thread shares with the main thread."""

    url: str
    key: str
    customer: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    acknowledged: dict[str, str] = field(default_factory=dict)
    """order_ref → serial of every acknowledged issuance."""
    interrupted: dict[str, float] = field(default_factory=dict)
    """order_ref → wall-clock time of its first failed attempt."""
    attempts: int = 0
    retries: int = 0
    transport_errors: int = 0
    server_errors: Counter[int] = field(default_factory=Counter)
    in_flight: bool = False
    """A request is on the wire (set before sending, cleared on its answer or error)."""
    abandoned: str | None = None
    """The order_ref in flight when the client stopped, if it was never acknowledged."""
    error: str | None = None

    def base_url(self) -> str:
        with self.lock:
            return self.url

    def move_to(self, url: str) -> None:
        with self.lock:
            self.url = url

    def acked(self) -> int:
        with self.lock:
            return len(self.acknowledged)

    def run(self) -> None:
        try:
            self._issue_forever()
        except BaseException as exc:  # reported by the main thread
            self.error = f"client thread crashed: {exc!r}"

    def _issue_forever(self) -> None:
        headers = {"Authorization": f"Bearer {self.key}"}
        with httpx.Client(headers=headers, timeout=ATTEMPT_TIMEOUT) as http:
            i = 0
            while not self.stop.is_set():
                ref = f"crash-{i}"
                if not self._issue(http, ref):
                    return
                i += 1

    def body(self, ref: str) -> dict[str, str]:
        return {
            "product": "studio",
            "plan": "studio-pro",
            "customer": self.customer,
            "order_ref": ref,
        }

    def _issue(self, http: httpx.Client, ref: str) -> bool:
        """Send the issuance ``ref`` until acknowledged; False if the client stops
        (or failed) first."""
        body = self.body(ref)
        sent = False
        while True:
            if sent and self.stop.is_set():
                self.abandoned = ref
                return False
            url = self.base_url() + "/v1/licenses"
            self.attempts += 1
            if sent:
                self.retries += 1
            sent = True
            self.in_flight = True
            try:
                response = http.post(url, json=body, headers={"Idempotency-Key": ref})
            except httpx.TransportError:
                self.transport_errors += 1
                self.in_flight = False
                self.interrupted.setdefault(ref, time.time())
                time.sleep(RETRY_PAUSE)
                continue
            self.in_flight = False
            if response.status_code in (200, 201):
                answer = response.json()
                if answer.get("order_ref") != ref or not answer.get("serial"):
                    self.error = f"{ref}: unexpected answer {response.text}"
                    return False
                if answer["created"] != (response.status_code == 201):
                    self.error = f"{ref}: {response.status_code} with {response.text}"
                    return False
                with self.lock:
                    self.acknowledged[ref] = answer["serial"]
                return True
            if response.status_code >= 500:
                self.server_errors[response.status_code] += 1
                time.sleep(RETRY_PAUSE)
                continue
            self.error = f"{ref}: {response.status_code} {response.text}"
            return False


@dataclass(frozen=True)
class Issued:
    seq: int
    time: float
    serial: str
    order_ref: str
    idempotency_key: str | None


def _read_store(data_dir: Path) -> tuple[int, list[Issued], set[str], dict[str, str]]:
    """From the SQLite file, read-only: the ledger size, every ``license.issued``
    event, the idempotency keys stored, and the projection's serial → order_ref."""
    uri = f"file:{data_dir / 'tenure.db'}?mode=ro"
    with sqlite3.connect(uri, uri=True, timeout=10) as db:
        rows = db.execute(
            "SELECT seq, type, leaf FROM ledger_events WHERE account = ? ORDER BY seq",
            (ACCOUNT,),
        ).fetchall()
        (head,) = db.execute(
            "SELECT size FROM ledger_heads WHERE account = ?", (ACCOUNT,)
        ).fetchone()
        keys = {
            k
            for (k,) in db.execute("SELECT key FROM idempotency_keys WHERE account = ?", (ACCOUNT,))
        }
        projected = dict(
            db.execute(
                "SELECT serial, order_ref FROM proj_licenses WHERE account = ?", (ACCOUNT,)
            ).fetchall()
        )
    assert [seq for seq, _, _ in rows] == list(range(len(rows))), "ledger seqs have gaps"
    assert head == len(rows), f"ledger head size {head} but {len(rows)} events"
    issued = []
    for seq, kind, leaf in rows:
        envelope = json.loads(leaf)
        assert (envelope["seq"], envelope["type"]) == (seq, kind)
        if kind == "license.issued":
            data = envelope["data"]
            stamp = datetime.fromisoformat(envelope["time"]).timestamp()
            key = envelope["idempotency_key"]
            issued.append(Issued(seq, stamp, data["serial"], data["order_ref"], key))
    return head, issued, keys, projected


@pytest.mark.slow
@pytest.mark.timeout(int(DRILL_LIMIT) + 4 * int(CLI_TIMEOUT) + 60)
def test_sigkill_drill_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    data_dir, log_dir = tmp_path / "data", tmp_path / "logs"
    log_dir.mkdir()
    rng = random.Random(CRASH_SEED)
    began = time.monotonic()
    server = _start(data_dir, log_dir, 0)
    stream: Stream | None = None
    client: threading.Thread | None = None
    kills = mid_request = 0
    restarts: list[float] = []
    try:
        key = server.owner_key()
        with server.client(key) as owner:
            apply_example_catalog(owner)
            made = owner.post(
                "/v1/customers",
                json={"name": "Crash Co", "email": "ops@crash.example", "external_id": "crash"},
            )
            assert made.status_code == 201, made.text
        stream = Stream(server.url, key, made.json()["id"])
        client = threading.Thread(target=stream.run, name="crash-client", daemon=True)
        client.start()

        while kills < KILLS:
            assert time.monotonic() - began < DRILL_LIMIT, (
                f"drill over {DRILL_LIMIT} s after {kills} kills"
            )
            time.sleep(rng.uniform(*KILL_DELAY))
            assert stream.error is None, stream.error
            mid_request += stream.in_flight
            server.process.kill()  # SIGKILL
            returncode = server.process.wait(timeout=STOP_TIMEOUT)
            assert returncode == -signal.SIGKILL, (returncode, server.logs())
            kills += 1
            killed = time.monotonic()
            server = _start(data_dir, log_dir, kills)
            restarts.append(time.monotonic() - killed)
            stream.move_to(server.url)

        # The last restart serves: one more acknowledgement, then stop the client.
        settled = stream.acked()
        until = time.monotonic() + 15
        while stream.acked() == settled and stream.error is None and time.monotonic() < until:
            time.sleep(0.05)
        assert stream.error is None, stream.error
        assert stream.acked() > settled, (
            f"no issuance acknowledged after the last restart\n{server.logs()}"
        )
        stream.stop.set()
        client.join(timeout=3 * ATTEMPT_TIMEOUT + 5)
        assert not client.is_alive(), "the client thread did not stop"
        assert stream.error is None, stream.error
        drill_seconds = time.monotonic() - began

        # Acknowledged orders sent again after all the kills append nothing: with their
        # key they get the same answer (the stored one), without it 200 "created": false.
        sample = rng.sample(sorted(stream.acknowledged), min(REPLAY_SAMPLE, stream.acked()))
        with server.client(key) as owner:
            before = owner.get("/v1/ledger/events", params={"start": 0, "limit": 1})
            for ref in sample:
                keyed = owner.post(
                    "/v1/licenses", json=stream.body(ref), headers={"Idempotency-Key": ref}
                )
                assert keyed.status_code in (200, 201), (ref, keyed.status_code, keyed.text)
                assert keyed.json()["serial"] == stream.acknowledged[ref]
                bare = owner.post("/v1/licenses", json=stream.body(ref))
                assert bare.status_code == 200, (ref, bare.status_code, bare.text)
                assert bare.json()["serial"] == stream.acknowledged[ref]
                assert bare.json()["created"] is False
            after = owner.get("/v1/ledger/events", params={"start": 0, "limit": 1})
            assert after.json()["size"] == before.json()["size"], "a repeated order appended"
        # uvicorn shuts down gracefully on SIGTERM, then re-raises it: -15 is a clean stop.
        assert server.stop() in (0, -signal.SIGTERM), server.logs()
        assert "Traceback" not in server.stderr(), server.logs()
    finally:
        if stream is not None:
            stream.stop.set()
        if client is not None:
            client.join(timeout=3 * ATTEMPT_TIMEOUT + 5)
        _kill_group(server)

    assert kills == KILLS
    assert stream is not None
    size, issued, keys, projected = _read_store(data_dir)
    by_ref = Counter(event.order_ref for event in issued)
    by_serial = Counter(event.serial for event in issued)
    serial_of = {event.order_ref: event.serial for event in issued}
    acknowledged = stream.acknowledged

    lost = sorted(ref for ref, serial in acknowledged.items() if serial_of.get(ref) != serial)
    duplicates = sorted(ref for ref, n in by_ref.items() if n > 1)
    duplicates += sorted(serial for serial, n in by_serial.items() if n > 1)
    unexplained = sorted(set(by_ref) - set(acknowledged) - {stream.abandoned})
    unprojected = sorted(s for s in acknowledged.values() if s not in projected)
    keyless = sorted(
        event.order_ref for event in issued if event.idempotency_key != event.order_ref
    )
    missing_keys = sorted(set(acknowledged) - keys)

    # Retries whose first attempt had committed before the kill took its answer away.
    when = {event.order_ref: event.time for event in issued}
    landed_unacked = [r for r, t in stream.interrupted.items() if r in when and when[r] < t]

    ledger = _cli("ledger", "verify", "--data-dir", str(data_dir))
    audit = _cli("audit", "verify", "--data-dir", str(data_dir))
    live = _cli("state", "digest", "--data-dir", str(data_dir), "--output", "json")
    rebuilt = _cli("state", "rebuild", "--data-dir", str(data_dir), "--output", "json")
    after = _cli("state", "digest", "--data-dir", str(data_dir), "--output", "json")

    errors = sum(stream.server_errors.values())
    print(
        f"\ncrash drill: kills={kills} (mid-request {mid_request}) "
        f"acknowledged={len(acknowledged)} "
        f"landed_unacked={len(landed_unacked)} attempts={stream.attempts} retries={stream.retries} "
        f"transport_errors={stream.transport_errors} 5xx={errors} "
        f"abandoned={stream.abandoned} events={size} issued={len(issued)} "
        f"duplicates={len(duplicates)} lost={len(lost)} "
        f"restart_mean={sum(restarts) / len(restarts):.2f}s max={max(restarts):.2f}s "
        f"drill={drill_seconds:.1f}s total={time.monotonic() - began:.1f}s "
        f"seed={CRASH_SEED} data_dir={data_dir}"
    )
    print(f"ledger verify: {ledger.stdout.strip()}\naudit verify: {audit.stdout.strip()}")
    assert lost == [], f"acknowledged issuances lost: {lost[:20]}"
    assert duplicates == [], f"duplicated order_refs/serials: {duplicates[:20]}"
    assert unexplained == [], f"issued but never acknowledged (nor in flight): {unexplained[:20]}"
    assert unprojected == [], f"acknowledged serials missing in proj_licenses: {unprojected[:20]}"
    assert keyless == [], f"issuances without their Idempotency-Key: {keyless[:20]}"
    assert missing_keys == [], f"acknowledged keys not stored: {missing_keys[:20]}"
    assert len(projected) == len(issued)
    assert ledger.returncode == 0, ledger.stdout + ledger.stderr
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert live.returncode == 0, live.stderr
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert after.returncode == 0, after.stderr
    live_digest = json.loads(live.stdout)
    rebuild_report = json.loads(rebuilt.stdout)
    assert live_digest["size"] == size
    assert rebuild_report["before"] == rebuild_report["after"] == live_digest["digest"]
    assert json.loads(after.stdout) == live_digest
