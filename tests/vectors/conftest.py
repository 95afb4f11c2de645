"""The conformance vectors of docs/vectors/ and the third-party programs that check
them (support/vectors.py).

A test that takes a ``vector`` runs once per vector of the manifest whose kind is in
its module's ``KINDS``. A missing tool fails under ``make test`` and CI and skips
elsewhere, saying how to install it (tests/support/required.py).
"""

from __future__ import annotations

import pytest

from support import vectors
from support.vectors import Results


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "vector" not in metafunc.fixturenames:
        return
    chosen = vectors.vectors_of(metafunc.module.KINDS)
    metafunc.parametrize("vector", chosen, ids=[vector["id"] for vector in chosen])


@pytest.fixture(scope="session")
def node_results() -> Results:
    """Node ``jose``'s outcome for each vector it checks."""
    return vectors.node_results()


@pytest.fixture(scope="session")
def go_results(tmp_path_factory: pytest.TempPathFactory) -> Results:
    """Go sumdb's outcome for each vector it checks (built in GOPATH mode, offline)."""
    return vectors.go_results(tmp_path_factory.mktemp("checkvectors"))
