"""Small things a new user of the command line hits (issue 15, item 6), each run as
the user runs it: the real ``tenure`` executable in a subprocess, in a directory of
the test's own (never the repository's ``./var``), on real SQLite files and sites."""

from __future__ import annotations

import base64
import re
import subprocess
from pathlib import Path

import pytest
import typer.main

from support.cli import TENURE, CliResult, cli_env, seed_args, tenure
from tenure import __version__
from tenure.cli.main import app

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
B64_ROOT = re.compile(r"^[A-Za-z0-9+/]{43}=$")


def tenure_in(cwd: Path, *args: str | Path, **env: str) -> CliResult:
    """``tenure ARGS`` run in ``cwd`` with the ``TENURE_*`` settings ``env`` only."""
    done = subprocess.run(
        [str(TENURE), *(str(a) for a in args)],
        cwd=cwd,
        env={**cli_env(), **env},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return CliResult(tuple(str(a) for a in args), done.returncode, done.stdout, done.stderr)


def one_line_error(done: CliResult) -> str:
    assert done.code == 1, str(done)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, str(done)
    return lines[0]


def site_url(path: Path) -> str:
    return path.resolve().as_uri()


# ---------------------------------------------------------------- --version and --help


def test_version_option_prints_what_the_version_command_prints() -> None:
    done = tenure("--version")
    assert done.code == 0, str(done)
    assert done.stdout.strip() == __version__ == tenure("version").stdout.strip()


@pytest.mark.parametrize(
    "command", [(), ("check",), ("serve",), ("license", "list"), ("snapshot", "verify")]
)
def test_help_shows_flags_without_a_value_type(command: tuple[str, ...]) -> None:
    done = tenure(*command, "--help")
    assert done.code == 0, str(done)
    assert "<bool>" not in done.stdout
    assert re.search(r"^\s+--help\s+Show this message and exit\.$", done.stdout, re.M), done.stdout


def _commands_named_in(text: str) -> set[tuple[str, ...]]:
    """``tenure WORD [WORD]`` in the code blocks and code spans of a Markdown text."""
    code = re.findall(r"```.*?```|`[^`]+`", text, re.S)
    named = re.findall(r"(?:^|[\s$|(`])tenure ([a-z][a-z-]*)(?: ([a-z][a-z-]*))?", "\n".join(code))
    return {tuple(word for word in words if word) for words in named}


def test_every_command_the_readme_and_docs_name_exists() -> None:
    root = typer.main.get_command(app)
    missing = []
    for document in DOCUMENTS:
        for words in _commands_named_in(document.read_text(encoding="utf-8")):
            command = root.commands.get(words[0])  # type: ignore[attr-defined]
            group = getattr(command, "commands", None)
            if command is None or (group is not None and len(words) > 1 and words[1] not in group):
                missing.append(f"{document.name}: tenure {' '.join(words)}")
    assert missing == []


# ---------------------------------------------------------------- roots, in base64


@pytest.fixture
def shipped(tmp_path: Path) -> tuple[Path, str]:
    """A seeded data dir and a site holding its events and a snapshot."""
    data, site = tmp_path / "data", site_url(tmp_path / "site")
    assert tenure(*seed_args(data, 60, 3)).code == 0
    for step in ("ship",), ("snapshot", "create"):
        done = tenure(*step, "--data-dir", data, "--site", site)
        assert done.code == 0, str(done)
    return data, site


def test_restore_prints_the_root_in_base64_as_ledger_verify_does(
    tmp_path: Path, shipped: tuple[Path, str]
) -> None:
    data, site = shipped
    verified = tenure("ledger", "verify", "--data-dir", data, "--output", "json").json()
    into = f"sqlite:///{tmp_path / 'restored.db'}"
    text = tenure("restore", "--site", site, "--into", into, "--data-dir", data)
    assert text.code == 0, str(text)
    proven = f"proven: root {verified['root']} (signed checkpoint at {verified['size']})"
    assert proven in text.stdout, text.stdout
    again = f"sqlite:///{tmp_path / 'again.db'}"
    as_json = tenure("restore", "--site", site, "--into", again, "--data-dir", data, "-o", "json")
    assert as_json.json()["root"] == verified["root"]
    assert B64_ROOT.match(verified["root"])
    assert len(base64.b64decode(verified["root"])) == 32


# ---------------------------------------------------------------- snapshot verify


def test_snapshot_verify_needs_no_data_dir_given_the_ledger_key(
    tmp_path: Path, shipped: tuple[Path, str]
) -> None:
    data, site = shipped
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    ledger_key = tenure("ledger", "key", "--data-dir", data).stdout.strip()
    verify = ("snapshot", "verify", "--site", site)
    by_env = tenure_in(elsewhere, *verify, TENURE_LEDGER_KEY=ledger_key)
    assert by_env.code == 0, str(by_env)
    assert by_env.stdout.startswith("ok "), str(by_env)
    by_option = tenure_in(elsewhere, *verify, "--key", ledger_key)
    assert by_option.code == 0, str(by_option)
    assert not (elsewhere / "var").exists()


def test_snapshot_verify_without_a_key_says_where_to_get_one(
    tmp_path: Path, shipped: tuple[Path, str]
) -> None:
    _, site = shipped
    line = one_line_error(tenure_in(tmp_path, "snapshot", "verify", "--site", site))
    for needle in ("--key", "TENURE_LEDGER_KEY", "tenure ledger key", "--data-dir"):
        assert needle in line, line


# ---------------------------------------------------------------- migrate and its data dir


def test_migrate_start_keeps_its_state_in_the_data_dir_of_the_source(tmp_path: Path) -> None:
    data, cwd = tmp_path / "srv", tmp_path / "cwd"
    cwd.mkdir()
    assert tenure(*seed_args(data, 30, 5)).code == 0
    source, target = f"sqlite:///{data / 'tenure.db'}", f"sqlite:///{tmp_path / 'target.db'}"
    started = tenure_in(cwd, "migrate", "start", "--from", source, "--to", target)
    assert started.code == 0, str(started)
    assert (data / "migration.json").exists()
    assert not (cwd / "var").exists()
    assert f"--data-dir {data}" in started.stdout, started.stdout
    assert "next:" in started.stdout, started.stdout


def test_migrate_start_refuses_a_source_whose_data_dir_it_cannot_tell(tmp_path: Path) -> None:
    source = "postgresql+psycopg://postgres@127.0.0.1:1/nowhere"
    target = f"sqlite:///{tmp_path / 'target.db'}"
    line = one_line_error(tenure_in(tmp_path, "migrate", "start", "--from", source, "--to", target))
    assert "--data-dir" in line, line
    assert not (tmp_path / "var").exists()


def test_each_migration_step_says_what_to_do_next(tmp_path: Path) -> None:
    data = tmp_path / "srv"
    assert tenure(*seed_args(data, 30, 6)).code == 0
    source, target = f"sqlite:///{data / 'tenure.db'}", f"sqlite:///{tmp_path / 'target.db'}"
    steps = [
        ("start", "--from", source, "--to", target),
        ("cutover",),
        ("rollback",),
    ]
    for step in steps:
        done = tenure("migrate", *step, "--data-dir", data)
        assert done.code == 0, str(done)
        assert "next:" in done.stdout, str(done)
    assert "tenure serve" in done.stdout, done.stdout
    assert "migrate start" in done.stdout, done.stdout
    status = tenure("migrate", "status", "--data-dir", data)
    assert "next:" in status.stdout, str(status)


def test_migrate_status_without_a_migration_names_the_data_dir(tmp_path: Path) -> None:
    line = one_line_error(tenure_in(tmp_path, "migrate", "status"))
    assert str(tmp_path / "var") in line, line
    assert "--data-dir" in line, line
