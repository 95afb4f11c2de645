"""The test suites share helpers through tests/support/, not through conftest modules:
no test file imports from a conftest, and a conftest holds fixtures and pytest hooks
only (issue 16)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def python_files() -> list[Path]:
    return sorted(TESTS.rglob("*.py"))


def imported_modules(tree: ast.Module) -> list[str]:
    """Every module ``tree`` imports from (relative ones with their leading dots)."""
    modules = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            modules.append("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            modules.extend(alias.name for alias in node.names)
    return modules


def is_fixture_or_hook(node: ast.FunctionDef) -> bool:
    if node.name.startswith("pytest_"):
        return True
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if ast.unparse(target) == "pytest.fixture":
            return True
    return False


def test_no_test_file_imports_from_a_conftest_module() -> None:
    importing = {
        f"{path.relative_to(TESTS).as_posix()}: {module}"
        for path in python_files()
        for module in imported_modules(ast.parse(path.read_text(encoding="utf-8")))
        if module.rsplit(".", 1)[-1] == "conftest"
    }
    assert importing == set(), "import helpers from tests/support/ instead"


def test_the_scan_sees_an_import_from_a_conftest() -> None:
    tree = ast.parse("from .conftest import ACCOUNT\nimport contract.conftest\n")
    assert imported_modules(tree) == [".conftest", "contract.conftest"]


def test_conftest_modules_define_only_fixtures_and_hooks() -> None:
    others = {
        f"{path.relative_to(TESTS).as_posix()}:{node.name}"
        for path in TESTS.rglob("conftest.py")
        for node in ast.parse(path.read_text(encoding="utf-8")).body
        if isinstance(node, ast.ClassDef)
        or (isinstance(node, ast.FunctionDef) and not is_fixture_or_hook(node))
    }
    assert others == set(), "helpers belong in tests/support/"
