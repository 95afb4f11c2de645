"""``make serve`` in a fresh checkout: a virtualenv with the runtime dependencies only
(no test or type-checking tools), installed quietly, then the banner.

The checkout is a copy of this one's files (tracked and new, nothing ignored), so
the test sees the Makefile and pyproject.toml as they are now."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from support.server import HOST, free_port

ROOT = Path(__file__).resolve().parents[2]
INSTALL_TIMEOUT = 240.0
BANNER = "Tenure listening on "
DEV_ONLY = ("playwright", "moto", "schemathesis", "mypy", "pytest", "hypothesis", "ruff")
RUNTIME = ("tenure", "uvicorn", "fastapi", "sqlalchemy")
MACHINE_PIP_CONFIG = re.compile(r"^WARNING: Location '.*' is ignored: it is neither a file nor a")
"""pip's complaint about this machine's own pip configuration (an extra index with
missing folders): not the project's to silence."""
STOPPED = re.compile(r"^make: \*\*\* \[Makefile:\d+: serve\] Terminated$")
"""make's note that this test stopped it (SIGTERM to the process group)."""


def fresh_checkout(target: Path) -> Path:
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (f.decode() for f in files)):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


@pytest.fixture(scope="module")
def made_serve(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """``make serve`` run until its banner, then stopped: the checkout, and what it
    wrote to stdout and stderr."""
    checkout = fresh_checkout(tmp_path_factory.mktemp("checkout"))
    data_dir = tmp_path_factory.mktemp("var")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TENURE_", "MAKE", "MFLAGS", "VIRTUAL_ENV", "PYTHON"))
    }
    logs = tmp_path_factory.mktemp("make-serve")
    with (logs / "out").open("wb") as out, (logs / "err").open("wb") as err:
        make = subprocess.Popen(
            ["make", "serve", f"DATA_DIR={data_dir}", f"HOST={HOST}", f"PORT={free_port()}"],
            cwd=checkout,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    try:
        _wait_for_banner(make, logs / "out")
    finally:
        os.killpg(make.pid, signal.SIGTERM)
        make.wait(timeout=30)
    return checkout, (logs / "out").read_text(), (logs / "err").read_text()


def _wait_for_banner(make: subprocess.Popen[bytes], stdout: Path) -> None:
    deadline = time.monotonic() + INSTALL_TIMEOUT
    while BANNER not in stdout.read_text():
        assert make.poll() is None, f"make serve exited with {make.returncode}"
        assert time.monotonic() < deadline, stdout.read_text()
        time.sleep(0.5)


FIND_MODULES = (
    "import importlib.util, json, sys; "
    "print(json.dumps([m for m in sys.argv[1:] if importlib.util.find_spec(m)]))"
)


def _installed(python: Path, modules: tuple[str, ...]) -> list[str]:
    """Which of ``modules`` the interpreter ``python`` can import."""
    done = subprocess.run(
        [str(python), "-c", FIND_MODULES, *modules], capture_output=True, text=True, check=True
    )
    found: list[str] = json.loads(done.stdout)
    return found


def test_make_serve_installs_the_runtime_dependencies_only(
    made_serve: tuple[Path, str, str],
) -> None:
    python = made_serve[0] / ".venv" / "bin" / "python"
    assert _installed(python, DEV_ONLY) == []
    assert _installed(python, RUNTIME) == list(RUNTIME)


def test_make_serve_prints_the_commands_it_runs_then_the_banner(
    made_serve: tuple[Path, str, str],
) -> None:
    _, stdout, _ = made_serve
    before = stdout[: stdout.index(BANNER)].splitlines()
    assert before, stdout
    # Only make's own echo of each command: nothing from pip or the build.
    assert all(line.startswith(("python3 ", ".venv/bin/", "touch ")) for line in before), before


def test_make_serve_writes_no_build_warning(made_serve: tuple[Path, str, str]) -> None:
    _, _, stderr = made_serve
    ours = [
        line
        for line in stderr.splitlines()
        if not MACHINE_PIP_CONFIG.match(line) and not STOPPED.match(line)
    ]
    # What is left are the server's own log lines, one JSON object each (not a TTY).
    assert all(line.startswith("{") for line in ours), ours
