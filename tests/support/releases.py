"""The releases recorded in RELEASES.toml (version, commit, date, database schema, API,
event schemas), oldest first; each built from its commit into a virtualenv of its own,
and the golden store each one makes (``tests/fixtures/golden-<version>/``)."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import sysconfig
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support.cli import subprocess_env

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"


def releases() -> list[dict[str, Any]]:
    """Every ``[[release]]`` of RELEASES.toml, in the file's order (oldest first)."""
    found: list[dict[str, Any]] = tomllib.loads((ROOT / "RELEASES.toml").read_text())["release"]
    return found


def release_id(release: dict[str, Any]) -> str:
    """A release's version, as a pytest id."""
    return str(release["version"])


@dataclass(frozen=True)
class OldRelease:
    version: str
    commit: str
    database_schema: str
    python: Path


def run(*command: str | Path, timeout: float = 180, umask: int = -1, **env: str) -> str:
    """Run ``command`` with the ``TENURE_*``-free environment plus ``env`` (and
    ``umask``, if given); its stdout. Fails the test unless it exits 0."""
    done = subprocess.run(
        [str(part) for part in command],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
        env=subprocess_env(**env),
        umask=umask,
    )
    assert done.returncode == 0, f"{command}: {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def build_release(release: dict[str, Any], base: Path) -> OldRelease:
    """``release`` installed from a worktree of its commit into a venv under ``base``
    (the worktree is removed again); fails unless that venv imports that version."""
    worktree, venv = base / "src", base / "venv"
    run("git", "-C", ROOT, "worktree", "add", "--detach", worktree, release["commit"])
    try:
        run(sys.executable, "-m", "venv", "--without-pip", venv)
        python = venv / "bin" / "python"
        purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
        site = Path(run(python, "-c", purelib).strip())
        (site / "zz_tenure_drill_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
        run(sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps",
            worktree)  # fmt: skip
    finally:
        run("git", "-C", ROOT, "worktree", "remove", "--force", worktree)
    where = run(python, "-c", "import tenure; print(tenure.__version__, tenure.__file__)")
    version, location = where.split()
    assert version == release["version"]
    assert Path(location).is_relative_to(venv), location
    return OldRelease(release["version"], release["commit"], release["database_schema"], python)


def golden_store(release: OldRelease, data_dir: Path) -> dict[str, Any]:
    """Make, with ``release`` itself, a store of its golden workload (the ``made_with``
    command of ``tests/fixtures/golden-<version>/expected.json``) in ``data_dir``, its
    files private (umask 077, as Tenure makes them since). Returns what the release
    reports of it: ``size``, state ``digest`` and Merkle ``root_b64``. They equal the
    golden ledger's where the workload is deterministic (0.1.0); from 0.2.0 on, the
    personal data sealed with random nonces makes each store's events differ."""
    golden = FIXTURES / f"golden-{release.version}" / "expected.json"
    expected: dict[str, Any] = json.loads(golden.read_text(encoding="utf-8"))
    made_with = shlex.split(expected["made_with"])
    assert made_with[0] == "tenure", expected["made_with"]

    def tenure(*args: str) -> Any:
        where = ("--data-dir", str(data_dir), "--output", "json")
        return json.loads(run(release.python, "-m", "tenure", *args, *where, umask=0o077))

    seeded, verified = tenure(*made_with[1:]), tenure("ledger", "verify")
    assert seeded["size"] == verified["size"] == expected["size"], (seeded, verified)
    assert verified["ok"] is True, verified
    return {"size": seeded["size"], "digest": seeded["digest"], "root_b64": verified["root"]}
