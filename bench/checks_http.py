"""Benchmark 5: ``POST /v1/check`` over HTTP vs a bare Starlette endpoint, same server.

A demo store is seeded (10,000+ licenses in the full run) and given an owner API key.
Two workloads: **one license** (its serial and its key, entitlements allowed and
denied, rotating) and **every license** (one body per license, half by serial and
half by license key, picked at random by wrk and in a shuffled rotation by loadgen).
Each runs on the SQLite store and on the same store migrated to PostgreSQL. For
uvicorn (and, on SQLite with one license, granian) with 1 and 2 workers, the real app
(``tenure.app:app_from_env``) and the bare app (``bench.bare_app:create_starlette_app``:
one plain Starlette POST route that parses a small JSON body, no database: the
framework's ceiling, issue 19) run as real server processes on loopback ports, and

* the maximum rate of each is measured closed loop with ``wrk`` (fixed connections,
  bodies from a Lua script), check and bare alternating;
* p50/p99 latency is measured open loop with ``bench/loadgen`` (Go, standard library,
  built at bench time) at half the check maximum, on the check and on the bare
  endpoint at the same offered rate. Latency counts from each request's due time.

Then ``POST /v1/check/batch`` (100 licenses at random per request, uvicorn x1,
SQLite) in decisions/s next to the bare endpoint taking the same bodies (goal
20,000 decisions/s), and, on uvicorn x1, check throughput with default settings
against ``TENURE_AUDIT_BATCH_MAX=1`` (one audit commit per decision), rounds
alternating.

Every server process is started in its own process group and killed on the way out.
Non-2xx answers count as errors (wrk: status >= 400, socket errors, timeouts).
"""

from __future__ import annotations

import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from bench.common import Options, Result, Timer, temp_dir
from bench.migrate import fresh_database, missing_server
from bench.migrate import url_of as pg_database_url
from tenure.app.runtime import Runtime
from tenure.config import Settings
from tenure.crypto.keystore import LicenseKeys
from tenure.durability import migration
from tenure.service import checks
from tenure.service.apikeys import authenticate, ensure_bootstrap_owner
from tenure.service.demo import demo_license_keys, seed_demo
from tenure.store import tables as t
from tenure.store.engine import create_engine, read_transaction
from tenure.store.migrations import upgrade
from tenure.store.unit import SqlStore, Store

ACCOUNT = "default"
SEED = 7
CONNECTIONS = 32
WRK_THREADS = 1
RATIO_GOAL = 0.50
P99_GOAL_MS = 5.0
CHECK_APP = "tenure.app:app_from_env"
BARE_APP = "bench.bare_app:create_starlette_app"
REPO = Path(__file__).resolve().parent.parent
LOADGEN_SRC = Path(__file__).resolve().parent / "loadgen"
ENTITLEMENTS = (
    "feature:export-pdf",
    "feature:cloud-sync",
    "feature:gpu-nodes",
    "feature:sso",
    "seats",
    "quota:api-calls",
)
CONFIGS = (("uvicorn", 1), ("uvicorn", 2), ("granian", 1), ("granian", 2))


BATCH = 100
"""Checks per ``/v1/check/batch`` request."""
BATCH_GOAL = 20_000
"""Decisions per second of ``/v1/check/batch`` in batches of ``BATCH`` (issue 19)."""


@dataclass
class Sizes:
    events: int
    """Demo events of the store the other HTTP benchmarks (``prepare``) build."""
    spread_events: int
    """Demo events of this benchmark's store: about one license per four events."""
    warmup: float
    seconds: float
    open_seconds: float
    audit_rounds: int


def sizes(opts: Options) -> Sizes:
    if opts.quick:
        return Sizes(2_000, 4_000, warmup=1.0, seconds=3.0, open_seconds=3.0, audit_rounds=1)
    # 42,000 demo events hold 10,000+ licenses.
    return Sizes(10_000, 42_000, warmup=2.0, seconds=10.0, open_seconds=10.0, audit_rounds=2)


# ---------------------------------------------------------------- the store


@dataclass
class Workload:
    """Request bodies of ``POST /v1/check``; ``spread``: picked at random (wrk) or in a
    shuffled rotation (loadgen), else rotating in order."""

    label: str
    bodies: list[str]
    spread: bool
    note: str


@dataclass
class Prepared:
    api_key: str
    bodies: list[str]
    """12 allowed and 4 denied checks of real licenses, half by license key (what the
    other HTTP benchmarks rotate)."""
    allowed: int
    denied: dict[str, int]
    one: Workload
    every: Workload
    batches: list[str]
    """``/v1/check/batch`` bodies of ``BATCH`` random licenses each."""


def prepare(data_dir: Path, events: int) -> Prepared:
    """Seed ``data_dir`` with the demo workload, create the owner key, pick bodies."""
    settings = Settings(data_dir=data_dir)
    runtime = Runtime.open(settings)
    try:
        ledger = runtime.ledger(
            random_bytes=random.Random(SEED).randbytes,
            license_key_hash=demo_license_keys(SEED).key_hash,
        )
        with ledger:
            seed_demo(ledger, events, SEED, ACCOUNT)
        api_key = ensure_bootstrap_owner(runtime.store, data_dir, ACCOUNT)
        assert api_key is not None, "fresh store has no keys"
        return _workloads(runtime.store.engine, runtime.store, api_key)
    finally:
        runtime.close()


def _workloads(engine: sa.Engine, store: Store, api_key: str) -> Prepared:
    licenses = t.projection["licenses"]
    with read_transaction(engine) as conn:
        serials = list(
            conn.scalars(
                sa.select(licenses.c.serial)
                .where(licenses.c.account == ACCOUNT)
                .order_by(licenses.c.serial)
            )
        )
    keys = demo_license_keys(SEED)
    now = datetime.now(UTC)
    rng = random.Random(SEED)

    def name(serial: str, by_key: bool) -> str:
        return keys.key(ACCOUNT, serial) if by_key else serial

    # One license: the first one allowed seats; each entitlement, by serial and by key.
    chosen = next(
        serial
        for serial in serials
        if checks.check(store, ACCOUNT, checks.CheckItem(serial, "seats"), now).answer["allowed"]
    )
    one_bodies = [
        json.dumps({"license": name(chosen, by_key), "entitlement": entitlement})
        for entitlement in ENTITLEMENTS
        for by_key in (False, True)
    ]
    answers = [
        checks.check(store, ACCOUNT, checks.CheckItem(chosen, e), now).answer for e in ENTITLEMENTS
    ]
    allowed = sum(1 for a in answers if a["allowed"])
    one = Workload(
        "1 license",
        one_bodies,
        False,
        f"license {chosen}: {len(ENTITLEMENTS)} entitlements ({allowed} allowed), "
        "each by serial and by license key, rotating",
    )
    # Every license: one body each, half by key, an entitlement drawn at random.
    every_bodies = [
        json.dumps(
            {"license": name(serial, index % 2 == 1), "entitlement": rng.choice(ENTITLEMENTS)}
        )
        for index, serial in enumerate(serials)
    ]
    rng.shuffle(every_bodies)
    every = Workload(
        f"{len(serials):,} licenses",
        every_bodies,
        True,
        "every license of the store, one body each (half by license key), an entitlement "
        "drawn at random; wrk picks at random, loadgen rotates a shuffled list",
    )
    batches = []
    for _ in range(64):
        picked = rng.sample(serials, min(BATCH, len(serials)))
        items = [{"license": serial, "entitlement": rng.choice(ENTITLEMENTS)} for serial in picked]
        batches.append(json.dumps({"checks": items}))
    bodies, allowed_of_mix, denied = _mixed(serials, store, keys, now)
    return Prepared(api_key, bodies, allowed_of_mix, denied, one, every, batches)


def _mixed(
    serials: list[str], store: Store, keys: LicenseKeys, now: datetime
) -> tuple[list[str], int, dict[str, int]]:
    """12 allowed and 4 denied checks (distinct reasons) of the first licenses, every
    other one named by its license key."""
    allowed: list[tuple[str, str]] = []
    denied: list[tuple[str, str, str]] = []
    for serial in serials[:200]:
        for entitlement in ENTITLEMENTS:
            answer = checks.check(store, ACCOUNT, checks.CheckItem(serial, entitlement), now).answer
            if answer["allowed"] and len(allowed) < 12:
                allowed.append((serial, entitlement))
            elif (
                not answer["allowed"]
                and len(denied) < 4
                and all(reason != answer["reason"] for _, _, reason in denied)
            ):
                denied.append((serial, entitlement, answer["reason"]))
        if len(allowed) >= 12 and len(denied) >= 4:
            break
    chosen = allowed + [(s, e) for s, e, _ in denied]
    bodies = [
        json.dumps({"license": keys.key(ACCOUNT, s) if i % 2 else s, "entitlement": e})
        for i, (s, e) in enumerate(chosen)
    ]
    reasons: dict[str, int] = {}
    for _, _, reason in denied:
        reasons[reason] = reasons.get(reason, 0) + 1
    return bodies, len(allowed), reasons


def migrate_to_postgresql(data_dir: Path, database: str) -> str:
    """The store of ``data_dir`` copied (and proven) into PostgreSQL ``database``
    (``tenure migrate``'s copy); its URL."""
    url = pg_database_url(database)
    source = Runtime.open(Settings(data_dir=data_dir), migrate=False)
    target = create_engine(url)
    try:
        upgrade(target)
        migration.copy_account(source.store, SqlStore(target), ACCOUNT)
    finally:
        target.dispose()
        source.close()
    return url


# ---------------------------------------------------------------- server processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _bin(name: str) -> str:
    candidate = Path(sys.executable).parent / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} is not installed (pip install {name})")
    return found


def server_command(server: str, workers: int, app: str, port: int) -> list[str]:
    host = ["--host", "127.0.0.1", "--port", str(port)]
    if server == "uvicorn":
        return [
            _bin("uvicorn"),
            "--factory",
            "--workers",
            str(workers),
            *host,
            "--log-level",
            "warning",
            "--no-access-log",
            app,
        ]
    return [
        _bin("granian"),
        "--interface",
        "asgi",
        "--factory",
        "--workers",
        str(workers),
        *host,
        "--log-level",
        "warning",
        "--no-access-log",
        app,
    ]


@dataclass
class Server:
    label: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group (workers included), then SIGKILL if needed."""
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        # The leader exited; make sure no worker of the group lingers.
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        return


@contextmanager
def running(
    server: str, workers: int, app: str, env: dict[str, str], workdir: Path, label: str
) -> Iterator[Server]:
    """A server process (own process group) that answers /healthz; killed on exit."""
    port = free_port()
    log = workdir / f"{label.replace(' ', '_')}-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            server_command(server, workers, app, port),
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    srv = Server(label, port, process, log)
    try:
        _wait_healthy(srv, workers)
        yield srv
    finally:
        _kill_group(process)


def _wait_healthy(srv: Server, workers: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    healthy = 0
    while time.monotonic() < deadline:
        if srv.process.poll() is not None:
            raise RuntimeError(
                f"{srv.label} exited with {srv.process.returncode}:\n{srv.log_tail()}"
            )
        try:
            status, _ = request(srv.port, "GET", "/healthz")
            if status == 200:
                healthy += 1
                # A few answers in a row: with several workers, give the others time
                # to finish their own startup (each opens the store).
                if healthy >= 3 * workers:
                    return
        except OSError:
            healthy = 0
        time.sleep(0.1)
    raise RuntimeError(f"{srv.label} not healthy after {timeout:.0f} s:\n{srv.log_tail()}")


def request(
    port: int,
    method: str,
    path: str,
    body: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def preflight(srv: Server, bodies: list[str], headers: dict[str, str], check: bool) -> None:
    """Every body answers 200 (and, for the check app, a decision) before timing."""
    for body in bodies:
        status, raw = request(srv.port, "POST", "/v1/check", body, headers)
        if status != 200:
            raise RuntimeError(
                f"{srv.label}: preflight POST /v1/check {body} -> {status} {raw[:300]!r}\n"
                f"server log (tail):\n{srv.log_tail()}"
            )
        if check and "allowed" not in json.loads(raw):
            raise RuntimeError(f"{srv.label}: no decision in {raw[:300]!r}")


# ---------------------------------------------------------------- load generators


@dataclass
class Closed:
    """One wrk run."""

    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float
    detail: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


WRK_SCRIPT = """
local bodies = %(bodies)s
local headers = {["Content-Type"] = "application/json", ["Authorization"] = %(auth)s}
local requests = {}
local i = 0

function init(args)
  for k, body in ipairs(bodies) do
    requests[k] = wrk.format("POST", %(target)s, headers, body)
  end
  math.randomseed(%(seed)d)
end

function request()
  if %(spread)s then
    return requests[math.random(#requests)]
  end
  i = i %% #requests + 1
  return requests[i]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK {"requests": %%d, "duration_us": %%d, "connect": %%d, "read": %%d, "write": %%d, '
    .. '"status": %%d, "timeout": %%d, "p50_us": %%d, "p99_us": %%d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def _lua_string(text: str) -> str:
    return json.dumps(text)  # a JSON string of ASCII text is a valid Lua string literal


def write_wrk_script(
    path: Path, bodies: list[str], auth: str, target: str = "/v1/check", spread: bool = False
) -> Path:
    """A wrk script posting ``bodies`` to ``target``: in turn, or at random (``spread``)."""
    lua_bodies = "{" + ", ".join(_lua_string(b) for b in bodies) + "}"
    values = {
        "bodies": lua_bodies,
        "auth": _lua_string(auth),
        "target": _lua_string(target),
        "seed": SEED,
        "spread": "true" if spread else "false",
    }
    path.write_text(WRK_SCRIPT % values)
    return path


def wrk(srv: Server, script: Path, seconds: float, target: str = "/v1/check") -> Closed:
    command = [
        _bin("wrk"),
        "-t",
        str(WRK_THREADS),
        "-c",
        str(CONNECTIONS),
        "-d",
        f"{max(1, round(seconds))}s",
        "--timeout",
        "5s",
        "-s",
        str(script),
        srv.url(target),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    match = re.search(r"^WRK (\{.*\})$", done.stdout, re.MULTILINE)
    if done.returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}\n{done.stderr}")
    raw = json.loads(match.group(1))
    detail = {k: raw[k] for k in ("connect", "read", "write", "status", "timeout") if raw[k]}
    return Closed(
        raw["requests"],
        raw["duration_us"] / 1e6,
        sum(detail.values()),
        raw["p50_us"] / 1000,
        raw["p99_us"] / 1000,
        detail,
    )


def alternate(sides: list[tuple[Server, Path, list[Closed]]], rounds: int, seconds: float) -> None:
    """``rounds`` closed-loop runs of each side (server, wrk script, runs so far), the
    order reversed every other round so that drift hits the sides alike."""
    for round_no in range(rounds):
        for srv, script, runs in sides if round_no % 2 == 0 else reversed(sides):
            runs.append(wrk(srv, script, seconds))


def closed_rate(runs: list[Closed]) -> float:
    """Requests per second over all of ``runs``."""
    return sum(r.requests for r in runs) / sum(r.seconds for r in runs)


@dataclass
class Open:
    """One open-loop run of bench/loadgen."""

    rate: float
    achieved: float
    sent: int
    errors: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    lag_p99_ms: float
    first_error: str


def build_loadgen(workdir: Path) -> Path:
    go = shutil.which("go")
    if go is None:
        raise RuntimeError("the open-loop load generator needs Go (go build bench/loadgen)")
    binary = workdir / "loadgen"
    env = dict(os.environ, GOFLAGS="", GO111MODULE="on", GOPROXY="off", CGO_ENABLED="0")
    home = Path(os.environ.get("HOME", "/nonexistent"))
    if "GOCACHE" not in os.environ and not os.access(home, os.W_OK):
        env["GOCACHE"] = str(workdir / "gocache")
    subprocess.run(
        [go, "build", "-o", str(binary), "."], cwd=LOADGEN_SRC, env=env, check=True, timeout=300
    )
    return binary


def loadgen(
    binary: Path, srv: Server, bodies_file: Path, auth: str, rate: float, seconds: float
) -> Open:
    command = [
        str(binary),
        "-url",
        srv.url("/v1/check"),
        "-bodies",
        str(bodies_file),
        "-H",
        f"Authorization: {auth}",
        "-rate",
        f"{rate:.1f}",
        "-duration",
        f"{seconds}s",
        "-conns",
        str(CONNECTIONS),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    try:
        raw = json.loads(done.stdout)
    except json.JSONDecodeError as error:
        raise RuntimeError(f"loadgen failed ({done.returncode}): {done.stderr}") from error
    return Open(
        raw["rate"],
        raw["achieved_rate"],
        raw["sent"],
        raw["errors"],
        raw["p50_ms"],
        raw["p99_ms"],
        raw["max_ms"],
        raw["send_lag_p99_ms"],
        raw.get("first_error", ""),
    )


# ---------------------------------------------------------------- the benchmark


@dataclass
class Row:
    backend: str
    workload: str
    server: str
    workers: int
    bare: Closed
    check: Closed
    check_open: Open
    bare_open: Open
    hits: float | None = None
    """The read model's hit share during the closed-loop run (one worker's /metrics)."""

    @property
    def ratio(self) -> float:
        return self.check.rate / self.bare.rate if self.bare.rate else float("nan")

    @property
    def errors(self) -> int:
        return self.bare.errors + self.check.errors + self.check_open.errors + self.bare_open.errors

    @property
    def name(self) -> str:
        return f"check {self.backend}, {self.workload}, {self.server} x{self.workers}"


@dataclass
class Case:
    """Servers of one backend (``env``) measured with one workload."""

    backend: str
    env: dict[str, str]
    workload: Workload
    configs: tuple[tuple[str, int], ...]


def run(opts: Options) -> list[Result]:
    size = sizes(opts)
    results: list[Result] = []
    with temp_dir("checks", opts.tmp_root) as workdir, ExitStack() as stack:
        timer = Timer()
        data_dir = workdir / "data"
        work = prepare(data_dir, size.spread_events)
        print(
            f"  store: {size.spread_events:,} demo events (seed {SEED}) in {timer.elapsed():.1f} s"
        )
        for workload in (work.one, work.every):
            print(f"  workload {workload.label}: {workload.note}")
        print("  auth Bearer <owner API key>; " + in_process_costs(data_dir, work))
        timer = Timer()
        binary = build_loadgen(workdir)
        print(f"  built bench/loadgen with {_go_version()} in {timer.elapsed():.1f} s")
        print(
            f"  closed loop: {_wrk_version()}, {WRK_THREADS} thread, {CONNECTIONS} connections, "
            f"{size.warmup:g} s warmup (spread workloads: until each worker met every license "
            f"about 3 times) + {size.seconds:g} s, check and bare alternating; "
            f"open loop: bench/loadgen at half the check maximum for {size.open_seconds:g} s "
            f"(<= {CONNECTIONS} keep-alive connections, latency from each due time), on the "
            "check and on the bare endpoint at that same rate"
        )
        print(
            f"  wrk/loadgen share the {os.cpu_count()} cores with the server under test; "
            f"{_versions()}"
        )
        env = dict(os.environ, TENURE_DATA_DIR=str(data_dir), PYTHONPATH=str(REPO))
        env.pop("TENURE_AUDIT_BATCH_MAX", None)
        env.pop("TENURE_DATABASE_URL", None)
        env.pop("TENURE_DECISION_SYNC", None)
        print(
            "  store SQLite/os: the SQLite store with TENURE_DECISION_SYNC=os (decisions' "
            "audit commits do not wait for the disk; a setting, not the default)"
        )
        cases = [
            Case("SQLite", env, work.one, CONFIGS),
            Case("SQLite", env, work.every, CONFIGS[:2]),
            # Decisions' audit commits not waiting for the disk (a setting, not the
            # default: docs/audit.md).
            Case("SQLite/os", dict(env, TENURE_DECISION_SYNC="os"), work.one, CONFIGS[:1]),
        ]
        why_not = missing_server()
        if why_not is None:
            timer = Timer()
            database = stack.enter_context(fresh_database())
            url = migrate_to_postgresql(data_dir, database)
            print(
                f"  the store migrated to PostgreSQL database {database} in {timer.elapsed():.1f} s"
            )
            pg_env = dict(env, TENURE_DATABASE_URL=url)
            cases += [
                Case("PostgreSQL", pg_env, work.one, CONFIGS[:2]),
                Case("PostgreSQL", pg_env, work.every, CONFIGS[:2]),
            ]
        else:
            print(f"  PostgreSQL rows not measured: {why_not}")
            results.append(_failure("check PostgreSQL throughput", why_not))
        rows: list[Row] = []
        failed: list[tuple[str, str]] = []
        auth = f"Bearer {work.api_key}"
        for number, case in enumerate(cases):
            workload = case.workload
            script = write_wrk_script(
                workdir / f"check-{number}.lua", workload.bodies, auth, spread=workload.spread
            )
            bodies_file = workdir / f"bodies-{number}.json"
            bodies_file.write_text(json.dumps(workload.bodies))
            for server, workers in case.configs:
                try:
                    row = _measure(
                        case, server, workers, workdir, auth, script, binary, bodies_file, size
                    )
                except RuntimeError as error:
                    label = f"{case.backend}, {workload.label}, {server} x{workers}"
                    failed.append((label, str(error)))
                    print(f"  {label}: FAILED (details below)", flush=True)
                    continue
                rows.append(row)
                _print_row(row, header=len(rows) == 1)
        print()
        for row in rows:
            results += _results(row)
        for name, why in failed:
            print(f"check {name}: FAILED, not measured\n    " + why.replace("\n", "\n    "))
            results.append(_failure(f"check {name} throughput", why))
        try:
            results.append(_batch(env, workdir, work, size))
        except RuntimeError as error:
            print("  batch FAILED:\n    " + str(error).replace("\n", "\n    "))
            results.append(_failure(f"check batch of {BATCH}, uvicorn x1", error))
        script = write_wrk_script(workdir / "audit.lua", work.one.bodies, auth)
        try:
            results.append(_audit(env, workdir, work, script, size))
        except RuntimeError as error:
            print("  audit comparison FAILED:\n    " + str(error).replace("\n", "\n    "))
            results.append(_failure("check uvicorn x1, TENURE_AUDIT_BATCH_MAX=1", error))
    return results


def _measure(
    case: Case,
    server: str,
    workers: int,
    workdir: Path,
    auth: str,
    script: Path,
    binary: Path,
    bodies_file: Path,
    size: Sizes,
) -> Row:
    name = f"{case.backend} {server} x{workers}"
    headers = {"Content-Type": "application/json", "Authorization": auth}
    sample = case.workload.bodies[:16]
    with (
        running(server, workers, CHECK_APP, case.env, workdir, f"{name} check") as check_srv,
        running(server, workers, BARE_APP, case.env, workdir, f"{name} bare") as bare_srv,
    ):
        preflight(check_srv, sample, headers, check=True)
        preflight(bare_srv, sample, headers, check=False)
        wrk(check_srv, script, _warmup(case.workload, workers, size))
        wrk(bare_srv, script, size.warmup)
        before = _lookups(check_srv)
        check = wrk(check_srv, script, size.seconds)
        hits = _hit_share(before, _lookups(check_srv))
        bare = wrk(bare_srv, script, size.seconds)
        half = check.rate / 2
        check_open = loadgen(binary, check_srv, bodies_file, auth, half, size.open_seconds)
        bare_open = loadgen(binary, bare_srv, bodies_file, auth, half, size.open_seconds)
        for srv in (check_srv, bare_srv):
            if srv.process.poll() is not None:
                raise RuntimeError(f"{srv.label} died during the run:\n{srv.log_tail()}")
    row = Row(
        case.backend,
        case.workload.label,
        server,
        workers,
        bare,
        check,
        check_open,
        bare_open,
        hits,
    )
    if row.errors:
        print(f"  {name}: errors seen; server log (tail):\n{check_srv.log_tail()}")
    return row


WARM_RATE = 1_500
"""Checks per second assumed when warming a spread workload (a low estimate)."""


def _lookups(srv: Server) -> dict[str, float]:
    """The read-model lookups in the /metrics of the worker that answers."""
    status, raw = request(srv.port, "GET", "/metrics")
    if status != 200:
        return {}
    pattern = r'^tenure_check_read_model_lookups_total\{result="(\w+)"\} (\S+)$'
    return {k: float(v) for k, v in re.findall(pattern, raw.decode(), re.MULTILINE)}


def _hit_share(before: dict[str, float], after: dict[str, float]) -> float | None:
    hits = after.get("hit", 0.0) - before.get("hit", 0.0)
    misses = after.get("miss", 0.0) - before.get("miss", 0.0)
    return hits / (hits + misses) if hits + misses > 0 else None


def _warmup(workload: Workload, workers: int, size: Sizes) -> float:
    """Seconds of warmup: for a spread workload, long enough that each worker's read
    model has met every license a few times (the steady state of a server that has
    been up a while), else ``size.warmup``."""
    if not workload.spread:
        return size.warmup
    return max(size.warmup, 3 * workers * len(workload.bodies) / WARM_RATE)


def _batch(env: dict[str, str], workdir: Path, work: Prepared, size: Sizes) -> Result:
    """``/v1/check/batch``: decisions/s in batches of ``BATCH``, uvicorn x1 on SQLite,
    next to the bare endpoint taking the same bodies."""
    auth = f"Bearer {work.api_key}"
    script = write_wrk_script(
        workdir / "batch.lua", work.batches, auth, target="/v1/check/batch", spread=True
    )
    headers = {"Content-Type": "application/json", "Authorization": auth}
    with (
        running("uvicorn", 1, CHECK_APP, env, workdir, "batch check") as check_srv,
        running("uvicorn", 1, BARE_APP, env, workdir, "batch bare") as bare_srv,
    ):
        for srv in (check_srv, bare_srv):
            status, raw = request(srv.port, "POST", "/v1/check/batch", work.batches[0], headers)
            if status != 200:
                raise RuntimeError(f"{srv.label}: preflight batch -> {status} {raw[:300]!r}")
        wrk(check_srv, script, size.warmup, "/v1/check/batch")
        wrk(bare_srv, script, size.warmup, "/v1/check/batch")
        check = wrk(check_srv, script, size.seconds, "/v1/check/batch")
        bare = wrk(bare_srv, script, size.seconds, "/v1/check/batch")
    per_batch = BATCH if len(json.loads(work.batches[0])["checks"]) == BATCH else 1
    decisions = check.rate * per_batch
    errors = check.errors + bare.errors
    result = Result(
        f"check batch of {BATCH} random licenses, uvicorn x1, SQLite",
        decisions,
        "decisions/s",
        bare.rate * per_batch,
        "bare endpoint parsing the same bodies",
        "decisions/s",
        f"goal >= {BATCH_GOAL:,} decisions/s",
        errors == 0 and decisions >= BATCH_GOAL,
        [
            f"{check.rate:,.0f} batches/s, p50/p99 {check.p50_ms:.1f}/{check.p99_ms:.1f} ms "
            f"(closed loop, {CONNECTIONS} conns); errors {errors}"
        ],
    )
    result.show()
    return result


def in_process_costs(data_dir: Path, work: Prepared, seconds: float = 0.5) -> str:
    """Per-call cost of the two store reads every check does, in this process, no HTTP:
    the floor under a check request before the server, FastAPI and the audit write."""
    runtime = Runtime.open(Settings(data_dir=data_dir), migrate=False)
    try:
        items = [json.loads(body) for body in work.bodies]
        questions = [checks.CheckItem(item["license"], item["entitlement"]) for item in items]
        now = datetime.now(UTC)

        def per_call(call: Callable[[int], object]) -> float:
            count, timer = 0, Timer()
            while timer.elapsed() < seconds:
                call(count)
                count += 1
            return timer.elapsed() / count * 1e6

        auth = per_call(lambda _: authenticate(runtime.store, work.api_key))
        decide = per_call(
            lambda i: checks.check(runtime.store, ACCOUNT, questions[i % len(questions)], now)
        )
    finally:
        runtime.close()
    return (
        f"in process, no HTTP: apikeys.authenticate {auth:,.0f} us + checks.check "
        f"{decide:,.0f} us = {auth + decide:,.0f} us of store reads per check "
        f"(one core: at most {1e6 / (auth + decide):,.0f} checks/s before HTTP and audit)"
    )


def _failure(name: str, error: str | Exception) -> Result:
    first = str(error).splitlines()[0] if str(error) else "error"
    return Result(name, 0.0, "req/s", 0.0, "not measured", "req/s", f"FAILED: {first}", False)


def _print_row(row: Row, header: bool) -> None:
    if header:
        print(
            f"  {'store':<10} {'workload':<16} {'server':<8} {'workers':>7} {'bare req/s':>11} "
            f"{'check req/s':>12} "
            f"{'ratio':>6} {f'>={RATIO_GOAL:.2f}':>7} {'half rate':>10} "
            f"{'p50 ms':>7} {'p99 ms':>7} "
            f"{'<=5 ms':>7} {'bare p50/p99 ms':>16} {'errors':>7}"
        )
    ratio_met = "met" if row.ratio >= RATIO_GOAL and not row.errors else "missed"
    p99_met = "met" if row.check_open.p99_ms <= P99_GOAL_MS and not row.errors else "missed"
    bare_lat = f"{row.bare_open.p50_ms:.2f}/{row.bare_open.p99_ms:.2f}"
    print(
        f"  {row.backend:<10} {row.workload:<16} {row.server:<8} {row.workers:>7} "
        f"{row.bare.rate:>11,.0f} {row.check.rate:>12,.0f} "
        f"{row.ratio:>6.2f} {ratio_met:>7} {row.check_open.rate:>8,.0f}/s "
        f"{row.check_open.p50_ms:>7.2f} {row.check_open.p99_ms:>7.2f} {p99_met:>7} "
        f"{bare_lat:>16} {row.errors:>7}",
        flush=True,
    )


def _results(row: Row) -> list[Result]:
    name = row.name
    notes = [
        f"wrk closed loop ({CONNECTIONS} conns): check p50/p99 {row.check.p50_ms:.1f}/"
        f"{row.check.p99_ms:.1f} ms, bare {row.bare.p50_ms:.1f}/{row.bare.p99_ms:.1f} ms",
        f"open loop at {row.check_open.rate:,.0f}/s (achieved {row.check_open.achieved:,.0f}/s): "
        f"check max {row.check_open.max_ms:.1f} ms, bare max {row.bare_open.max_ms:.1f} ms; "
        f"loadgen send lag p99 {row.check_open.lag_p99_ms:.2f} ms (included in latencies)",
    ]
    if row.hits is not None:
        notes.append(f"read model hits during the closed-loop run: {row.hits:.0%} (one worker's)")
    for label, run_errors, detail in (
        ("wrk check", row.check.errors, row.check.detail),
        ("wrk bare", row.bare.errors, row.bare.detail),
    ):
        if run_errors:
            notes.append(f"{label} errors: {detail}")
    for label, open_run in (("loadgen check", row.check_open), ("loadgen bare", row.bare_open)):
        if open_run.errors:
            notes.append(f"{label}: {open_run.errors} errors, first: {open_run.first_error}")
    ok = row.errors == 0
    throughput = Result(
        f"{name} throughput",
        row.check.rate,
        "req/s",
        row.bare.rate,
        "bare Starlette endpoint, same server",
        "req/s",
        f"goal >= {RATIO_GOAL:.2f}",
        ok and row.ratio >= RATIO_GOAL,
        notes,
    )
    latency = Result(
        f"{name} p99 at half rate ({row.check_open.rate:,.0f}/s)",
        row.check_open.p99_ms * 1000,
        "us",
        row.bare_open.p99_ms * 1000,
        "bare endpoint p99 at the same rate",
        "us",
        f"goal p99 <= {P99_GOAL_MS * 1000:,.0f} us absolute",
        ok and row.check_open.p99_ms <= P99_GOAL_MS,
    )
    for result in (throughput, latency):
        result.show()
    return [throughput, latency]


def _audit(env: dict[str, str], workdir: Path, work: Prepared, script: Path, size: Sizes) -> Result:
    has_setting = "audit_batch_max" in Settings.model_fields
    print(
        "\n  audit batching, uvicorn x1: check throughput with default settings vs "
        "TENURE_AUDIT_BATCH_MAX=1 (one commit per decision), two servers on the same store, "
        f"{size.audit_rounds} round(s) alternating"
    )
    if not has_setting:
        print(
            "  NOTE: tenure.config.Settings has no audit_batch_max yet, so "
            "TENURE_AUDIT_BATCH_MAX is ignored and both servers run the same configuration"
        )
    unbatched_env = dict(env, TENURE_AUDIT_BATCH_MAX="1")
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {work.api_key}"}
    batched_runs: list[Closed] = []
    unbatched_runs: list[Closed] = []
    with (
        running("uvicorn", 1, CHECK_APP, env, workdir, "audit default") as batched,
        running("uvicorn", 1, CHECK_APP, unbatched_env, workdir, "audit batch 1") as unbatched,
    ):
        preflight(batched, work.bodies, headers, check=True)
        preflight(unbatched, work.bodies, headers, check=True)
        wrk(batched, script, size.warmup)
        wrk(unbatched, script, size.warmup)
        alternate(
            [(batched, script, batched_runs), (unbatched, script, unbatched_runs)],
            size.audit_rounds,
            size.seconds,
        )
    b_rate, u_rate = closed_rate(batched_runs), closed_rate(unbatched_runs)
    errors = sum(r.errors for r in batched_runs + unbatched_runs)
    result = Result(
        "check uvicorn x1, TENURE_AUDIT_BATCH_MAX=1",
        u_rate,
        "req/s",
        b_rate,
        "default audit batching",
        "req/s",
        "no goal set" if has_setting else "no goal set; setting not present yet",
        None,
    )
    print(result.line())
    print(
        f"    errors: {errors}; default p99 (closed loop) {batched_runs[-1].p99_ms:.1f} ms, "
        f"batch 1 p99 {unbatched_runs[-1].p99_ms:.1f} ms"
    )
    return result


def _go_version() -> str:
    try:
        out = subprocess.run(["go", "version"], capture_output=True, text=True, check=True)
        return out.stdout.split()[2]
    except (OSError, subprocess.CalledProcessError, IndexError):
        return "go"


def _wrk_version() -> str:
    out = subprocess.run([_bin("wrk"), "-v"], capture_output=True, text=True)
    words = (out.stdout + out.stderr).split()
    return f"wrk {words[1]}" if len(words) > 1 else "wrk"


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    names = ("fastapi", "starlette", "uvicorn", "granian", "uvloop", "httptools")
    found = []
    for name in names:
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return ", ".join(found)


def missing_tools() -> list[str]:
    """The external tools this benchmark needs that are not installed."""
    missing = [name for name in ("wrk", "go") if shutil.which(name) is None]
    for name in ("uvicorn", "granian"):
        if not (Path(sys.executable).parent / name).exists() and shutil.which(name) is None:
            missing.append(name)
    return missing
