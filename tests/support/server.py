"""A real Tenure server: ``python -m tenure serve`` as a subprocess on a free
127.0.0.1 port, seeded with the demo workload through the CLI; started, waited for
(``/healthz``) and stopped (SIGTERM, then kill)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from support.cli import subprocess_env, tenure_executable

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


def wait_until_healthy(server: Server) -> None:
    """Wait up to ``STARTUP_TIMEOUT`` for ``/healthz`` to answer 200; fail the test
    (stopping the server) if it exits or does not."""
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


def start_server(
    data_dir: Path,
    log_dir: Path,
    *args: str,
    python: Path | str = sys.executable,
    **settings: str,
) -> Server:
    """Start ``python -m tenure serve`` on ``data_dir`` (plus ``args``, and the
    ``TENURE_*`` environment ``settings``) and wait for ``/healthz``; ``python`` is
    another release's interpreter for an upgrade drill."""
    port = free_port()
    stdout_path, stderr_path = log_dir / f"serve-{port}.out", log_dir / f"serve-{port}.err"
    command = [str(python), "-m", "tenure", "serve", "--data-dir", str(data_dir), *args]
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
        wait_until_healthy(server)
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
