"""The real ``tenure`` executable in a subprocess, as an operator runs it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

TENURE = Path(sys.executable).with_name("tenure")


def tenure_executable() -> str:
    """The ``tenure`` console script of the interpreter running the tests."""
    if TENURE.exists():
        return str(TENURE)
    found = shutil.which("tenure")
    if found is None:
        pytest.fail("the tenure console script is not installed next to the test interpreter")
    return found


def subprocess_env(**extra: str) -> dict[str, str]:
    """The test's environment without any TENURE_* setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENURE_")}
    env.update(extra)
    return env


def cli_env() -> dict[str, str]:
    """The environment of ``tenure``: no TENURE_* setting, a 200-column terminal."""
    return subprocess_env(COLUMNS="200")


@dataclass(frozen=True)
class CliResult:
    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def __str__(self) -> str:
        return f"tenure {' '.join(self.args)} -> {self.code}\n{self.stdout}\n{self.stderr}"


def tenure(*args: str | Path) -> CliResult:
    """Run the installed ``tenure`` executable and wait for it."""
    return tenure_many([args])[0]


def tenure_json(*args: str | Path) -> Any:
    """``tenure ARGS --output json``, which must succeed: its answer."""
    done = tenure(*args, "--output", "json")
    assert done.code == 0, str(done)
    return done.json()


def tenure_many(calls: Iterable[Iterable[str | Path]]) -> list[CliResult]:
    """Run several ``tenure`` commands at once (each is a separate process)."""
    started = []
    for call in calls:
        args = tuple(str(a) for a in call)
        proc = subprocess.Popen(
            [str(TENURE), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=cli_env(),
        )
        started.append((args, proc))
    results = []
    for args, proc in started:
        out, err = proc.communicate(timeout=120)
        results.append(CliResult(args, proc.returncode, out.decode(), err.decode()))
    return results


def seed_args(data_dir: Path, events: int, seed: int) -> list[str | Path]:
    return [
        "demo",
        "seed",
        "--events",
        str(events),
        "--seed",
        str(seed),
        "--data-dir",
        data_dir,
        "--output",
        "json",
    ]
