"""The conformance vectors of docs/vectors/ and the third-party programs that check
them: Node's ``jose`` (tests/vectors/node/) and Go's sumdb packages (tests/vectors/go/).
A missing tool fails under ``make test`` and CI and skips elsewhere, saying how to
install it (``support.required``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Collection
from pathlib import Path
from typing import Any, NoReturn

from support.node import NODE_JOSE
from support.required import missing_tool

TESTS = Path(__file__).resolve().parents[1]
VECTORS = TESTS.parent / "docs" / "vectors"
NODE_CHECKER = TESTS / "vectors" / "node" / "check_vectors.js"
GO_CHECKER = TESTS / "vectors" / "go" / "main.go"
GOPATH = Path("/usr/share/gocode")
"""Debian's golang-golang-x-mod-dev puts golang.org/x/mod here, in GOPATH layout."""

Results = dict[str, dict[str, Any]]


def manifest() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((VECTORS / "manifest.json").read_text("utf-8"))
    return loaded


def vectors_of(kinds: Collection[str]) -> list[dict[str, Any]]:
    """The vectors of the manifest whose kind is in ``kinds``."""
    return [vector for vector in manifest()["vectors"] if vector["kind"] in kinds]


def missing(tool: str, install: str) -> NoReturn:
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


def node_results() -> Results:
    """Node ``jose``'s outcome for each vector it checks."""
    node = shutil.which("node")
    jose = os.environ.get("JOSE_PATH", str(NODE_JOSE))
    if node is None or (jose == str(NODE_JOSE) and not NODE_JOSE.is_dir()):
        missing("node with jose", "apt-get install nodejs node-jose")
    return run_checker([str(node), str(NODE_CHECKER)], JOSE_PATH=jose)


def go_results(scratch: Path) -> Results:
    """Go sumdb's outcome for each vector it checks (built in GOPATH mode, offline,
    in ``scratch``)."""
    go = shutil.which("go")
    if go is None or not (GOPATH / "src/golang.org/x/mod/sumdb/tlog").is_dir():
        missing("go with golang.org/x/mod", "apt-get install golang-go golang-golang-x-mod-dev")
    offline = {"GO111MODULE": "off", "GOPATH": str(GOPATH), "GOPROXY": "off", "GOFLAGS": ""}
    build = subprocess.run(
        [str(go), "build", "-o", str(scratch / "checkvectors"), str(GO_CHECKER)],
        cwd=scratch,
        env={**os.environ, **offline, "GOCACHE": str(scratch / "cache"), "CGO_ENABLED": "0"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert build.returncode == 0, f"go build failed:\n{build.stdout}\n{build.stderr}"
    return run_checker([str(scratch / "checkvectors")])


def without_detail(outcome: dict[str, Any]) -> dict[str, Any]:
    """An outcome as the manifest states it (``detail`` is a message for people)."""
    return {name: value for name, value in outcome.items() if name != "detail"}
