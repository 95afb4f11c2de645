"""``tenure serve`` logs text to a terminal and JSON lines elsewhere
(``TENURE_LOG_FORMAT=auto``, the default); ``text`` or ``json`` choose one
whatever stderr is (docs/observability.md, "Logs")."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from support.cli import subprocess_env
from support.server import HOST, free_port

STARTED = "Application startup complete."
WAIT_SECONDS = 30.0
TEXT_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} INFO uvicorn\.error Application startup complete\.$"
)


def _serve(data_dir: Path, stderr: int, **settings: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "tenure", "serve", "--data-dir", str(data_dir)]
    return subprocess.Popen(
        [*command, "--host", HOST, "--port", str(free_port())],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        env=subprocess_env(**settings),
    )


def _read_until_started(fd: int, process: subprocess.Popen[bytes]) -> list[str]:
    """The lines read from ``fd`` up to uvicorn's startup line (or fail)."""
    seen = b""
    deadline = time.monotonic() + WAIT_SECONDS
    while STARTED.encode() not in seen:
        assert time.monotonic() < deadline, seen.decode(errors="replace")
        assert process.poll() is None, seen.decode(errors="replace")
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            seen += os.read(fd, 65536)
    return seen.decode().replace("\r\n", "\n").splitlines()


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=WAIT_SECONDS)


def serve_logs_on_a_terminal(data_dir: Path, **settings: str) -> list[str]:
    """What ``tenure serve`` wrote to its stderr, a pseudo-terminal, until started."""
    primary, secondary = pty.openpty()
    try:
        process = _serve(data_dir, secondary, **settings)
        os.close(secondary)
        try:
            return _read_until_started(primary, process)
        finally:
            _stop(process)
    finally:
        os.close(primary)


def serve_logs_into_a_pipe(data_dir: Path, **settings: str) -> list[str]:
    """What ``tenure serve`` wrote to its stderr, a pipe, until started."""
    process = _serve(data_dir, subprocess.PIPE, **settings)
    assert process.stderr is not None
    try:
        return _read_until_started(process.stderr.fileno(), process)
    finally:
        _stop(process)
        process.stderr.close()


def _started_line(lines: list[str]) -> str:
    return next(line for line in lines if STARTED in line)


def test_a_terminal_gets_one_readable_text_line_per_event(tmp_path: Path) -> None:
    lines = serve_logs_on_a_terminal(tmp_path / "data")
    assert TEXT_LINE.match(_started_line(lines)), lines
    assert not any(line.startswith("{") for line in lines), lines


def test_a_pipe_gets_one_json_object_per_line(tmp_path: Path) -> None:
    lines = serve_logs_into_a_pipe(tmp_path / "data")
    started = json.loads(_started_line(lines))
    assert started["level"] == "info"
    assert started["logger"] == "uvicorn.error"
    assert all(isinstance(json.loads(line), dict) for line in lines), lines


def test_the_setting_chooses_json_on_a_terminal(tmp_path: Path) -> None:
    lines = serve_logs_on_a_terminal(tmp_path / "data", TENURE_LOG_FORMAT="json")
    assert json.loads(_started_line(lines))["message"] == STARTED


def test_the_setting_chooses_text_into_a_pipe(tmp_path: Path) -> None:
    lines = serve_logs_into_a_pipe(tmp_path / "data", TENURE_LOG_FORMAT="text")
    assert TEXT_LINE.match(_started_line(lines)), lines
