"""A real Tenure server for end-to-end tests.

``server`` (session scope) seeds a data dir with the demo workload through the CLI,
then runs ``python -m tenure serve`` as a subprocess on a free 127.0.0.1 port, waits
for ``/healthz`` and stops it (SIGTERM, then kill) at teardown. Tests talk to it over
real HTTP with httpx and the bootstrap owner key the server wrote.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from required import missing_tool

SEED_EVENTS = 500
SEED = 9
SEED_CHECKPOINT_EVERY = 100
"""While seeding, sign a checkpoint every ~100 events so the ledger has a history of
stored checkpoints (sizes depend on write batching; tests discover them)."""

BOOTSTRAP_FILE = "bootstrap-owner.key"
HOST = "127.0.0.1"
STARTUP_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
REQUEST_TIMEOUT = 10.0


def subprocess_env(**extra: str) -> dict[str, str]:
    """The test's environment without any TENURE_* setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENURE_")}
    env.update(extra)
    return env


def tenure_executable() -> str:
    """The ``tenure`` console script of the interpreter running the tests."""
    beside = Path(sys.executable).with_name("tenure")
    if beside.exists():
        return str(beside)
    found = shutil.which("tenure")
    if found is None:
        pytest.fail("the tenure console script is not installed next to the test interpreter")
    return found


def seed_data_dir(data_dir: Path, events: int = SEED_EVENTS, seed: int = SEED) -> None:
    """``tenure demo seed --events N --seed S --data-dir D``, as an operator would."""
    command = [tenure_executable(), "demo", "seed", "--events", str(events), "--seed", str(seed)]
    done = subprocess.run(
        [*command, "--data-dir", str(data_dir)],
        env=subprocess_env(TENURE_CHECKPOINT_EVERY_EVENTS=str(SEED_CHECKPOINT_EVERY)),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"demo seed failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    """A running ``tenure serve`` process and where its output goes."""

    data_dir: Path
    port: int
    process: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def key_file(self) -> Path:
        return self.data_dir / BOOTSTRAP_FILE

    def stdout(self) -> str:
        return self.stdout_path.read_text(encoding="utf-8", errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def owner_key(self) -> str:
        return self.key_file.read_text(encoding="utf-8").strip()

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=REQUEST_TIMEOUT)

    def stop(self) -> int:
        """SIGTERM, wait up to ``STOP_TIMEOUT``, then kill. Returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT)
        return self.process.returncode

    def logs(self) -> str:
        return f"--- stdout ---\n{self.stdout()}\n--- stderr ---\n{self.stderr()}"


def _wait_until_healthy(server: Server) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    with httpx.Client(base_url=server.url, timeout=1.0) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                pytest.fail(
                    f"tenure serve exited with {server.process.returncode}\n{server.logs()}"
                )
            try:
                response = client.get("/healthz")
            except httpx.TransportError:
                response = None
            if response is not None and response.status_code == 200:
                return
            time.sleep(0.1)
    server.stop()
    pytest.fail(f"tenure serve was not healthy within {STARTUP_TIMEOUT} s\n{server.logs()}")


def start_server(data_dir: Path, log_dir: Path, *args: str, **settings: str) -> Server:
    """Start ``python -m tenure serve`` on ``data_dir`` (plus ``args``, and the
    ``TENURE_*`` environment ``settings``) and wait for ``/healthz``."""
    port = free_port()
    stdout_path, stderr_path = log_dir / f"serve-{port}.out", log_dir / f"serve-{port}.err"
    command = [sys.executable, "-m", "tenure", "serve", "--data-dir", str(data_dir), *args]
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        process = subprocess.Popen(
            [*command, "--host", HOST, "--port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=subprocess_env(**settings),
        )
    server = Server(data_dir, port, process, stdout_path, stderr_path)
    try:
        _wait_until_healthy(server)
    except BaseException:
        server.stop()
        raise
    return server


@contextmanager
def running_server(data_dir: Path, log_dir: Path, *args: str, **settings: str) -> Iterator[Server]:
    server = start_server(data_dir, log_dir, *args, **settings)
    try:
        yield server
    finally:
        server.stop()


def tenure(
    server: Server, *args: str, key: str | None = None, url: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the ``tenure`` CLI against ``server`` (as its owner unless ``key`` is given)."""
    env = subprocess_env(
        TENURE_URL=url or server.url,
        TENURE_API_KEY=key if key is not None else server.owner_key(),
    )
    return subprocess.run(
        [tenure_executable(), *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def ok_json(done: subprocess.CompletedProcess[str]) -> Any:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def assert_one_line_error(done: subprocess.CompletedProcess[str], *needles: str) -> str:
    """A failed command (not a usage error) that printed one line naming ``needles``."""
    assert done.returncode not in (0, 2), (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


CATALOG = Path(__file__).resolve().parents[2] / "examples" / "catalog.yaml"
NODE_VERIFIER = Path(__file__).with_name("nodeverify") / "verify.js"
NODE_JOSE = Path("/usr/share/nodejs/jose")


def node_verify(
    jwks: dict[str, Any], text: str, issuer: str, audience: str, typ: str, scratch: Path
) -> subprocess.CompletedProcess[str]:
    """``node nodeverify/verify.js``: panva's ``jose`` verifies the JWS ``text`` of
    ``typ`` with the key set ``jwks`` alone. Skips without Node and Debian's
    node-jose (fails under ``make test`` and on CI, where they must be installed)."""
    node = shutil.which("node")
    if node is None or not NODE_JOSE.is_dir():
        missing_tool("node and Debian's node-jose are needed (apt-get install nodejs node-jose)")
    jwks_file = scratch / "jwks.json"
    jwks_file.write_text(json.dumps(jwks))
    return subprocess.run(
        [node, str(NODE_VERIFIER), str(jwks_file), text, issuer, audience, typ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.fixture
def closing() -> Iterator[Callable[[Any], Any]]:
    """Registers what a test opens (``closing(LicenseClient(...))`` returns it) and
    closes it after the test: an SDK client owns an HTTP client."""
    opened: list[Any] = []

    def register(thing: Any) -> Any:
        opened.append(thing)
        return thing

    yield register
    while opened:
        opened.pop().close()


def apply_example_catalog(owner: httpx.Client) -> None:
    """Apply ``examples/catalog.yaml`` (products studio and render-farm, plan studio-pro …).

    Where it takes entitlements from licensed plans it needs approval, and no key can
    approve a request of the bootstrap key: ``owner`` withdraws its request, and two
    people's keys it makes ask and approve instead."""
    yaml = {"content": CATALOG.read_bytes(), "headers": {"Content-Type": "application/yaml"}}
    applied = owner.post("/v1/catalog", **yaml)
    if applied.status_code != 202:
        assert applied.status_code == 200, applied.text
        return
    withdrawn = owner.post(
        f"/v1/approvals/{applied.json()['approval']['approval']}/reject",
        json={"reason": "asked by a person instead"},
    )
    assert withdrawn.status_code == 200, withdrawn.text
    first, second = people(owner)
    with client_with(owner, first) as person:
        asked = person.post("/v1/catalog", **yaml)
    assert asked.status_code == 202, asked.text
    approve_with(owner, second, asked.json()["approval"]["approval"])


def people(owner: httpx.Client, role: str = "admin") -> tuple[str, str]:
    """Two keys of ``role`` that ``owner`` (the bootstrap key) makes: two people's
    keys, which approve each other's requests (the two-person rule, docs/approvals.md)."""
    keys = []
    for name in ("first person", "second person"):
        made = owner.post("/v1/apikeys", json={"role": role, "name": name})
        assert made.status_code == 201, made.text
        keys.append(str(made.json()["key"]))
    return keys[0], keys[1]


def client_with(client: httpx.Client, key: str) -> httpx.Client:
    """A client of ``client``'s server that authenticates with the API key ``key``."""
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.Client(base_url=client.base_url, headers=headers, timeout=REQUEST_TIMEOUT)


def approve_with(client: httpx.Client, key: str, approval: str) -> dict[str, Any]:
    """Approve ``approval`` with the API key ``key`` (at ``client``'s server) and check
    that it executed; the answer of ``POST /v1/approvals/{id}/approve``."""
    with client_with(client, key) as approver:
        done = approver.post(f"/v1/approvals/{approval}/approve", json={"reason": "second pair"})
    assert done.status_code == 200, done.text
    assert done.json()["approval"]["status"] == "executed", done.text
    body: dict[str, Any] = done.json()
    return body


def rotate_token_keys(owner: httpx.Client) -> str:
    """Rotate the account's token keys as the two-person rule wants it (a person
    asks, another approves, both made by ``owner``); the new signing key's kid."""
    first, second = people(owner)
    with client_with(owner, first) as asker:
        asked = asker.post("/v1/keys/rotate")
    assert asked.status_code == 202, asked.text
    rotated = approve_with(owner, second, asked.json()["approval"]["approval"])
    kid: str = rotated["result"]["kid"]
    return kid


def ledger_key_of(client: httpx.Client) -> str:
    """The account's one ledger verifier key (``GET /v1/ledger/key``): what an
    application ships as ``LicenseClient(ledger_key=...)``."""
    answer = client.get("/v1/ledger/key")
    assert answer.status_code == 200, answer.text
    [line] = answer.text.splitlines()
    return line


def issue_license(owner: httpx.Client, plan: str = "studio-pro") -> dict[str, Any]:
    """A new customer and a new license of ``plan`` (product studio) for it; the answer
    of ``POST /v1/licenses`` (serial, key, …)."""
    customer = owner.post(
        "/v1/customers", json={"name": "Device Co", "email": "it@device.example"}
    ).json()["id"]
    issued = owner.post(
        "/v1/licenses",
        json={
            "product": "studio",
            "plan": plan,
            "customer": customer,
            "order_ref": uuid.uuid4().hex,
        },
    )
    assert issued.status_code == 201, issued.text
    body: dict[str, Any] = issued.json()
    return body


@contextmanager
def seeded_server(factory: pytest.TempPathFactory, name: str) -> Iterator[Server]:
    """A server of its own on a freshly seeded data dir (500 events, seed 9).

    Modules that append get their own: the session ``server``'s ledger size is
    asserted by the ledger API tests.
    """
    data_dir = factory.mktemp(name) / "data"
    seed_data_dir(data_dir)
    with running_server(data_dir, factory.mktemp(f"{name}-logs")) as running:
        yield running


@pytest.fixture(scope="module")
def own_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A seeded server of the requesting module's own (for modules that rotate keys
    or otherwise change what other modules see)."""
    with seeded_server(tmp_path_factory, request.module.__name__.rsplit(".", 1)[-1]) as running:
        yield running


@pytest.fixture(scope="module")
def catalog_owner(own_server: Server) -> Iterator[httpx.Client]:
    """The bootstrap owner of ``own_server``, with examples/catalog.yaml applied."""
    with own_server.client(own_server.owner_key()) as client:
        apply_example_catalog(client)
        yield client


@pytest.fixture(scope="module")
def pinned_ledger_key(catalog_owner: httpx.Client) -> str:
    """``own_server``'s ledger verifier key, as an application ships it."""
    return ledger_key_of(catalog_owner)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server on a data dir seeded with the demo workload (500 events, seed 9)."""
    with seeded_server(tmp_path_factory, "seeded") as running:
        yield running


@pytest.fixture(scope="session")
def owner_key(server: Server) -> str:
    return server.owner_key()


@pytest.fixture(scope="session")
def api(server: Server, owner_key: str) -> Iterator[httpx.Client]:
    """An HTTP client authenticated with the bootstrap owner key."""
    with server.client(owner_key) as client:
        yield client


@dataclass(frozen=True)
class Fetched:
    status: int
    content_type: str
    text: str


@pytest.fixture(scope="session")
def checkpoints_by_size(api: httpx.Client) -> dict[int, Fetched]:
    """``GET /v1/ledger/checkpoint?size=N`` for every N from 0 to the ledger size + 1."""
    size = api.get("/v1/ledger/events", params={"start": 0, "limit": 1}).json()["size"]

    def fetch(n: int) -> Fetched:
        response = api.get("/v1/ledger/checkpoint", params={"size": n})
        return Fetched(response.status_code, response.headers["content-type"], response.text)

    with ThreadPoolExecutor(max_workers=8) as pool:
        return dict(zip(range(size + 2), pool.map(fetch, range(size + 2)), strict=True))


@pytest.fixture(scope="session")
def stored_checkpoint_sizes(checkpoints_by_size: dict[int, Fetched]) -> list[int]:
    """The sizes at which the server holds a signed checkpoint, ascending."""
    return sorted(n for n, fetched in checkpoints_by_size.items() if fetched.status == 200)
