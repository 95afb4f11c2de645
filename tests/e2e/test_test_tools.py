"""``make test`` is the whole story on a fresh machine: ``scripts/test-tools`` installs
what the suite drives (as root) or says in one line what to install, checks that
PostgreSQL answers, and the suite then runs with ``TENURE_REQUIRE_TOOLS=1`` so that
no test skips for a missing tool."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from support.server import free_port

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "test-tools"
NOBODY = ("/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")


def run_script(*prefix: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``scripts/test-tools`` fed to ``bash -s`` (after ``prefix``) with only ``env``:
    a user who cannot read this checkout can still be given it on stdin."""
    environment = [f"{name}={value}" for name, value in env.items()]
    with SCRIPT.open("rb") as script:
        return subprocess.run(
            [*prefix, "/usr/bin/env", "-i", *environment, "/bin/bash", "-s"],
            stdin=script,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


def as_a_user() -> tuple[str, ...]:
    """Run as ``nobody`` when we are root: the script then never calls apt-get."""
    return NOBODY if os.geteuid() == 0 else ()


def test_with_every_tool_there_it_succeeds_and_says_nothing() -> None:
    done = run_script(*as_a_user(), PATH=os.environ["PATH"])
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_a_user_who_is_not_root_is_told_in_one_line_which_packages_to_install(
    tmp_path: Path,
) -> None:
    bare = tmp_path / "bin"  # a PATH without go, node, softhsm2-util or PostgreSQL
    bare.mkdir()
    done = run_script(*as_a_user(), PATH=str(bare))
    assert done.returncode == 1
    assert done.stdout == ""
    packages = "golang-go nodejs softhsm2 postgresql"
    assert done.stderr.splitlines() == [
        f"make test needs these Debian packages: {packages}; install them with: "
        f"sudo apt-get install -y {packages}"
    ]


def test_an_unreachable_postgresql_is_named_in_one_line() -> None:
    server = f"host=127.0.0.1 port={free_port()} user=postgres dbname=test"
    done = run_script(*as_a_user(), PATH=os.environ["PATH"], TENURE_TEST_PG=server)
    assert done.returncode == 1
    [line] = done.stderr.splitlines()
    assert line.startswith(f"make test: PostgreSQL at '{server}' does not answer: "), line
    assert "Connection refused" in line
    assert "TENURE_TEST_PG" in line


def test_make_test_checks_the_tools_first_then_requires_them_in_every_test() -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "MFLAGS"))}
    done = subprocess.run(
        ["make", "--dry-run", "--always-make", "test"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    commands = done.stdout.splitlines()
    pytest_runs = [line for line in commands if "/pytest " in line]
    assert len(pytest_runs) == 1, commands
    assert pytest_runs[0].startswith("TENURE_REQUIRE_TOOLS=1 "), pytest_runs
    assert commands.index("scripts/test-tools") < commands.index(pytest_runs[0])
    assert commands[0] == "scripts/test-tools", commands
