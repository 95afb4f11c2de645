"""SQL lives in ``tenure.store`` only. import-linter checks the imports (no
SQLAlchemy or psycopg above the store, and nothing above it reaches past its seam
into engines, tables or the SQL modules); this checks the text: no string literal
outside the store reads as a SQL statement. And a new import that breaks a rule
makes ``lint-imports`` (so ``make test``) fail."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import tenure

SRC = Path(tenure.__file__).parent
ROOT = SRC.parents[1]
STATEMENT = re.compile(
    r"^\s*(SELECT\s.+\sFROM\s|INSERT\s+INTO\s|UPDATE\s+\w+\s+SET\s|DELETE\s+FROM\s|"
    r"CREATE\s+(TABLE|INDEX|UNIQUE)\s|DROP\s+(TABLE|INDEX)\s|ALTER\s+TABLE\s|PRAGMA\s|"
    r"BEGIN\s+IMMEDIATE|VACUUM\b|LISTEN\s|NOTIFY\s|SELECT\s+pg_)",
    re.DOTALL,
)


def sql_literals(path: Path) -> list[str]:
    """The string constants of ``path`` that are SQL statements, as ``file:line: text``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return [
        f"{path.relative_to(SRC.parent)}:{node.lineno}: {node.value.strip()[:60]!r}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and STATEMENT.match(node.value)
    ]


@pytest.mark.parametrize(
    "text",
    [
        "SELECT seq FROM ledger_events",
        "INSERT INTO x VALUES (1)",
        "UPDATE proj_licenses SET status = 'active'",
        "DELETE FROM audit_log",
        "PRAGMA journal_mode=WAL",
        "SELECT pg_advisory_xact_lock(1)",
    ],
)
def test_a_statement_is_found(text: str) -> None:
    assert STATEMENT.match(text)


@pytest.mark.parametrize(
    "text", ["Select the license to revoke", "update the webhook", "Delete from the list"]
)
def test_prose_is_not_a_statement(text: str) -> None:
    assert not STATEMENT.match(text)


def test_no_sql_outside_the_store() -> None:
    found = [
        hit
        for path in sorted(SRC.rglob("*.py"))
        if path.relative_to(SRC).parts[0] != "store"
        for hit in sql_literals(path)
    ]
    assert found == []


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("service/checks.py", "import sqlalchemy", "Only the store imports SQLAlchemy"),
        ("api/check_routes.py", "from tenure.store import tables", "only its seam"),
        ("domain/decisions.py", "import tenure.service.checks", "Layers"),
    ],
)
def test_a_new_import_that_breaks_a_rule_fails_lint_imports(
    tmp_path: Path, module: str, line: str, contract: str
) -> None:
    copy = tmp_path / "src" / "tenure"
    shutil.copytree(SRC, copy, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = copy / module
    target.write_text(f"{line}\n" + target.read_text(encoding="utf-8"), encoding="utf-8")
    done = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-logo", "--no-cache"],
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path / "src"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode != 0, done.stdout
    broken = [row for row in done.stdout.splitlines() if row.endswith("BROKEN")]
    assert any(contract in row for row in broken), done.stdout
