"""``tenure serve`` on a port it cannot listen on: one line, a non-zero exit, no
banner and no bootstrap key (the key is created only once the socket is ours, so a
later start that succeeds still prints it the first time)."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.cli import subprocess_env
from support.server import BOOTSTRAP_FILE, HOST, running_server

SERVE_TIMEOUT = 60


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port another process listens on (this test's own socket)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind((HOST, 0))
        holder.listen()
        yield holder.getsockname()[1]


def serve_on(data_dir: Path, port: int, *args: str) -> subprocess.CompletedProcess[str]:
    """``tenure serve`` on ``port``, expected to end by itself."""
    command = [sys.executable, "-m", "tenure", "serve", "--data-dir", str(data_dir), *args]
    return subprocess.run(
        [*command, "--host", HOST, "--port", str(port)],
        env=subprocess_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=SERVE_TIMEOUT,
        check=False,
    )


def assert_cannot_listen(done: subprocess.CompletedProcess[str], port: int) -> None:
    """One line naming the address and the reason, no banner, no key."""
    assert done.returncode not in (0, 2), (done.returncode, done.stdout, done.stderr)
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"error: cannot listen on {HOST}:{port}: address already in use"
    ], done.stderr


def test_a_busy_port_fails_in_one_line_with_no_banner_and_no_key(
    tmp_path: Path, busy_port: int
) -> None:
    data_dir = tmp_path / "data"
    done = serve_on(data_dir, busy_port)
    assert_cannot_listen(done, busy_port)
    assert not (data_dir / BOOTSTRAP_FILE).exists()


def test_a_busy_port_fails_the_same_with_several_workers(tmp_path: Path, busy_port: int) -> None:
    data_dir = tmp_path / "data"
    done = serve_on(data_dir, busy_port, "--workers", "2")
    assert_cannot_listen(done, busy_port)
    assert not (data_dir / BOOTSTRAP_FILE).exists()


def test_the_first_start_that_listens_still_prints_the_bootstrap_key(
    tmp_path: Path, busy_port: int
) -> None:
    data_dir = tmp_path / "data"
    assert_cannot_listen(serve_on(data_dir, busy_port), busy_port)
    with running_server(data_dir, tmp_path) as server:
        key = server.owner_key()
        banner = server.stdout()
    assert f"Bootstrap owner API key (shown once): {key}" in banner
    assert banner.startswith(f"Tenure listening on http://{HOST}:{server.port}")


def test_several_workers_serve_on_the_socket_bound_before_the_banner(tmp_path: Path) -> None:
    with running_server(tmp_path / "data", tmp_path, "--workers", "2") as server:
        with server.client(server.owner_key()) as owner:
            for _ in range(4):
                assert owner.get("/v1/ledger/checkpoint").status_code == 200
        assert "Bootstrap owner API key (shown once)" in server.stdout()
