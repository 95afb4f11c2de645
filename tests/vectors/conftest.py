"""The conformance vectors of docs/vectors/ and the third-party programs that check
them: Node's ``jose`` (tests/vectors/node/) and Go's sumdb packages (tests/vectors/go/).

A test that takes a ``vector`` runs once per vector of the manifest whose kind is in
its module's ``KINDS``. A missing tool fails under ``make test`` and CI and skips
elsewhere, saying how to install it (tests/required.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from required import missing_tool

HERE = Path(__file__).parent
VECTORS = HERE.parents[1] / "docs" / "vectors"
NODE_CHECKER = HERE / "node" / "check_vectors.js"
GO_CHECKER = HERE / "go" / "main.go"
DEBIAN_JOSE = Path("/usr/share/nodejs/jose")
GOPATH = Path("/usr/share/gocode")
"""Debian's golang-golang-x-mod-dev puts golang.org/x/mod here, in GOPATH layout."""

Results = dict[str, dict[str, Any]]


def manifest() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((VECTORS / "manifest.json").read_text("utf-8"))
    return loaded


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "vector" not in metafunc.fixturenames:
        return
    kinds = metafunc.module.KINDS
    vectors = [vector for vector in manifest()["vectors"] if vector["kind"] in kinds]
    metafunc.parametrize("vector", vectors, ids=[vector["id"] for vector in vectors])


def missing(tool: str, install: str) -> None:
    """Fail (``make test``, CI) or skip because ``tool`` is not installed."""
    missing_tool(f"{tool} is needed to check the vectors; install with: {install}")


def run_checker(command: list[str], **env: str) -> Results:
    """Run a checker over docs/vectors/; it prints vector id → outcome as JSON."""
    done = subprocess.run(
        [*command, str(VECTORS)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **env},
    )
    assert done.returncode == 0, f"{command[0]} failed:\n{done.stdout}\n{done.stderr}"
    results: Results = json.loads(done.stdout)
    return results


@pytest.fixture(scope="session")
def node_results() -> Results:
    """Node ``jose``'s outcome for each vector it checks."""
    node = shutil.which("node")
    jose = os.environ.get("JOSE_PATH", str(DEBIAN_JOSE))
    if node is None or (jose == str(DEBIAN_JOSE) and not DEBIAN_JOSE.is_dir()):
        missing("node with jose", "apt-get install nodejs node-jose")
    return run_checker([str(node), str(NODE_CHECKER)], JOSE_PATH=jose)


@pytest.fixture(scope="session")
def go_results(tmp_path_factory: pytest.TempPathFactory) -> Results:
    """Go sumdb's outcome for each vector it checks (built in GOPATH mode, offline)."""
    go = shutil.which("go")
    if go is None or not (GOPATH / "src/golang.org/x/mod/sumdb/tlog").is_dir():
        missing("go with golang.org/x/mod", "apt-get install golang-go golang-golang-x-mod-dev")
    out = tmp_path_factory.mktemp("checkvectors")
    offline = {"GO111MODULE": "off", "GOPATH": str(GOPATH), "GOPROXY": "off", "GOFLAGS": ""}
    build = subprocess.run(
        [str(go), "build", "-o", str(out / "checkvectors"), str(GO_CHECKER)],
        cwd=out,
        env={**os.environ, **offline, "GOCACHE": str(out / "cache"), "CGO_ENABLED": "0"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert build.returncode == 0, f"go build failed:\n{build.stdout}\n{build.stderr}"
    return run_checker([str(out / "checkvectors")])


def without_detail(outcome: dict[str, Any]) -> dict[str, Any]:
    """An outcome as the manifest states it (``detail`` is a message for people)."""
    return {name: value for name, value in outcome.items() if name != "detail"}
