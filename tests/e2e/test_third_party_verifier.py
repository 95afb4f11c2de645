"""A third party verifies Tenure's ledger with Go's reference implementation.

``goverify/main.go`` uses golang.org/x/mod/sumdb/note (signed notes) and
golang.org/x/mod/sumdb/tlog (RFC 6962 trees), as shipped by Debian's
golang-golang-x-mod-dev, built in GOPATH mode. It gets exactly what a client fetched
from the running server: the verifier key, a checkpoint, an event's leaf with its
inclusion proof, and a consistency proof from an older signed checkpoint.

Under ``make test`` and on CI a missing Go toolchain is a failure; elsewhere the
module skips (``required``). ``make test`` installs it:
``apt-get install -y golang-go golang-golang-x-mod-dev``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from support.required import missing_tool
from tenure.ledger.note import NoteSigner

pytestmark = pytest.mark.go

GOPATH = Path("/usr/share/gocode")
"""Where Debian's golang-*-dev packages put Go sources (GOPATH layout)."""
X_MOD = GOPATH / "src/golang.org/x/mod/sumdb"
SOURCE = Path(__file__).with_name("goverify") / "main.go"
INSTALL = "apt-get install -y golang-go golang-golang-x-mod-dev"

Bundle = dict[str, Any]


@dataclass(frozen=True)
class GoVerifier:
    """The built verifier, or why there is none."""

    binary: Path | None
    missing: str | None = None
    broken: str | None = None

    def require(self) -> Path:
        if self.broken is not None:
            pytest.fail(self.broken)
        if self.binary is None:
            missing_tool(f"{self.missing}; install with: {INSTALL}")
        return self.binary

    def run(self, bundle: Bundle, workdir: Path) -> subprocess.CompletedProcess[str]:
        binary = self.require()
        path = workdir / "bundle.json"
        path.write_text(json.dumps(bundle), encoding="utf-8")
        return subprocess.run(
            [str(binary), str(path)], capture_output=True, text=True, timeout=30, check=False
        )


@pytest.fixture(scope="module")
def go_verifier(tmp_path_factory: pytest.TempPathFactory) -> GoVerifier:
    go = shutil.which("go")
    if go is None:
        return GoVerifier(None, missing="the go command is not on PATH")
    if not (X_MOD / "note").is_dir() or not (X_MOD / "tlog").is_dir():
        return GoVerifier(None, missing=f"golang.org/x/mod sources are not under {GOPATH}")
    out = tmp_path_factory.mktemp("goverify")
    env = {
        **os.environ,
        "GO111MODULE": "off",  # Debian ships x/mod as GOPATH sources, not as a module
        "GOPATH": str(GOPATH),
        "GOCACHE": str(out / "gocache"),
        "GOFLAGS": "",
        "GOPROXY": "off",
        "GOTOOLCHAIN": "local",
        "CGO_ENABLED": "0",
    }
    binary = out / "goverify"
    build = subprocess.run(
        [go, "build", "-o", str(binary), str(SOURCE)],
        cwd=out,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    if build.returncode != 0:
        return GoVerifier(None, broken=f"go build failed:\n{build.stdout}\n{build.stderr}")
    return GoVerifier(binary)


def _get(api: httpx.Client, path: str, **params: int) -> httpx.Response:
    response = api.get(path, params=params)
    assert response.status_code == 200, response.text
    return response


def fetch_bundle(api: httpx.Client, seq: int, old_size: int) -> Bundle:
    """Everything a client needs, fetched from the server, for the Go verifier."""
    head = api.post("/v1/ledger/checkpoint")
    assert head.status_code == 200, head.text
    size = int(head.text.split("\n")[1])
    old = _get(api, "/v1/ledger/checkpoint", size=old_size).text
    (event,) = _get(api, "/v1/ledger/events", start=seq, limit=1).json()["events"]
    inclusion = _get(api, "/v1/ledger/proof/inclusion", seq=seq, size=size).json()
    consistency = _get(api, "/v1/ledger/proof/consistency", **{"from": old_size, "to": size})
    return {
        "vkey": _get(api, "/v1/ledger/key").text.splitlines()[0],
        "checkpoint": head.text,
        "inclusion": {**inclusion, "leaf_b64": event["leaf_b64"]},
        "consistency": {
            **consistency.json(),
            "old_root_b64": old.split("\n")[2],
            "old_checkpoint": old,
        },
    }


@pytest.fixture(scope="module")
def older_sizes(stored_checkpoint_sizes: list[int]) -> list[int]:
    """Sizes of signed checkpoints before the head (the size 0 tree has no proofs)."""
    older = [n for n in stored_checkpoint_sizes[:-1] if n > 0]
    assert older, stored_checkpoint_sizes
    return older


def test_go_reference_verifier_accepts_the_servers_checkpoint_and_proofs(
    go_verifier: GoVerifier, api: httpx.Client, older_sizes: list[int], tmp_path: Path
) -> None:
    for seq, old_size in [(0, older_sizes[0]), (137, older_sizes[-1]), (499, older_sizes[0])]:
        bundle = fetch_bundle(api, seq, old_size)
        leaf = base64.b64decode(bundle["inclusion"]["leaf_b64"])
        expected_leaf_hash = hashlib.sha256(b"\x00" + leaf).digest()
        assert base64.b64decode(bundle["inclusion"]["leaf_hash_b64"]) == expected_leaf_hash
        done = go_verifier.run(bundle, tmp_path)
        assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
        assert done.stdout.startswith("OK: checkpoint "), done.stdout
        state_line = bundle["checkpoint"].split("\n")[3]
        assert state_line.startswith("tenure-state "), bundle["checkpoint"]
        assert f" state {state_line.split()[1]};" in done.stdout
        assert f"leaf {seq} included in tree 500" in done.stdout
        assert f"tree {old_size} is a prefix of tree 500" in done.stdout


def _flip_b64(text: str) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[-1] ^= 1
    return base64.b64encode(bytes(raw)).decode()


def _set(path: str, change: Callable[[Any], Any]) -> Callable[[Bundle], None]:
    *parents, last = path.split(".")

    def tamper(bundle: Bundle) -> None:
        node = bundle
        for key in parents:
            node = node[key]
        node[last] = change(node[last])

    return tamper


def _forge_checkpoint_root(bundle: Bundle) -> None:
    lines = bundle["checkpoint"].split("\n")
    lines[2] = _flip_b64(lines[2])
    bundle["checkpoint"] = "\n".join(lines)


def _forge_state_root(bundle: Bundle) -> None:
    lines = bundle["checkpoint"].split("\n")
    name, value = lines[3].split(" ")
    lines[3] = f"{name} {_flip_b64(value)}"
    bundle["checkpoint"] = "\n".join(lines)


def _alter_bare_old_root(bundle: Bundle) -> None:
    del bundle["consistency"]["old_checkpoint"]
    bundle["consistency"]["old_root_b64"] = _flip_b64(bundle["consistency"]["old_root_b64"])


def _foreign_key(bundle: Bundle) -> None:
    """Trust a different key of the same name: the server's signature is then unknown."""
    name = bundle["vkey"].split("+")[0]
    bundle["vkey"] = NoteSigner(name, Ed25519PrivateKey.generate()).verifier.key_string()


INCLUSION_FAILS = "inclusion of leaf"
CONSISTENCY_FAILS = "consistency of tree"
TAMPERINGS: dict[str, tuple[Callable[[Bundle], None], str]] = {
    "inclusion hash flipped": (
        _set("inclusion.proof", lambda p: [_flip_b64(p[0]), *p[1:]]),
        INCLUSION_FAILS,
    ),
    "inclusion hash dropped": (_set("inclusion.proof", lambda p: p[:-1]), INCLUSION_FAILS),
    "inclusion hash added": (_set("inclusion.proof", lambda p: [*p, p[0]]), INCLUSION_FAILS),
    "other leaf index": (_set("inclusion.index", lambda i: i + 1), INCLUSION_FAILS),
    "leaf altered": (
        _set(
            "inclusion.leaf_b64",
            lambda b: base64.b64encode(base64.b64decode(b).replace(b'"seq"', b'"Seq"')).decode(),
        ),
        "is not the hash of the leaf",
    ),
    "leaf hash altered": (
        _set("inclusion.leaf_hash_b64", _flip_b64),
        "is not the hash of the leaf",
    ),
    "consistency hash flipped": (
        _set("consistency.proof", lambda p: [*p[:-1], _flip_b64(p[-1])]),
        CONSISTENCY_FAILS,
    ),
    "consistency hash dropped": (_set("consistency.proof", lambda p: p[1:]), CONSISTENCY_FAILS),
    "old root unlike the old checkpoint": (
        _set("consistency.old_root_b64", _flip_b64),
        "old checkpoint",
    ),
    "old root altered, no old checkpoint": (_alter_bare_old_root, CONSISTENCY_FAILS),
    "checkpoint root altered": (_forge_checkpoint_root, "checkpoint signature"),
    "checkpoint state root altered": (_forge_state_root, "checkpoint signature"),
    "checkpoint signed by another key": (_foreign_key, "checkpoint signature"),
    "checkpoint unsigned": (
        _set("checkpoint", lambda note: note.split("\n\n")[0] + "\n"),
        "checkpoint signature",
    ),
}


@pytest.mark.parametrize(("tamper", "reason"), TAMPERINGS.values(), ids=TAMPERINGS.keys())
def test_go_reference_verifier_rejects_tampered_input(
    go_verifier: GoVerifier,
    api: httpx.Client,
    older_sizes: list[int],
    tmp_path: Path,
    tamper: Callable[[Bundle], None],
    reason: str,
) -> None:
    bundle = fetch_bundle(api, 137, older_sizes[-1])
    assert go_verifier.run(bundle, tmp_path).returncode == 0  # intact, it verifies
    tamper(bundle)
    done = go_verifier.run(bundle, tmp_path)
    assert done.returncode == 1, f"{done.stdout}\n{done.stderr}"
    assert done.stderr.startswith("FAIL: "), done.stderr
    assert reason in done.stderr
    assert done.stdout == ""


def _root_of_path(k: bytes, leaf: bytes, siblings: list[bytes]) -> bytes:
    """docs/state.md, "Proofs", from the text: fold the siblings from the last to 0."""
    h = leaf
    for depth in range(len(siblings) - 1, -1, -1):
        bit = (k[depth // 8] >> (7 - depth % 8)) & 1
        pair = siblings[depth] + h if bit else h + siblings[depth]
        h = hashlib.sha256(b"\x01" + pair).digest()
    return h


def test_go_reference_verifier_checks_the_signature_of_a_proof_carrying_check(
    go_verifier: GoVerifier, api: httpx.Client, older_sizes: list[int], tmp_path: Path
) -> None:
    listed = api.get("/v1/licenses", params={"status": "active", "limit": 1})
    serial = listed.json()["licenses"][0]["serial"]
    answer = api.post(
        "/v1/check", json={"license": serial, "entitlement": "seats", "proof": True}
    ).json()
    note = answer["proof"]["checkpoint"]
    body = note.split("\n\n")[0].split("\n")
    state = base64.b64decode(body[3].removeprefix("tenure-state "))
    # Each row the decision read hashes to the signed state root (docs/state.md).
    tables = set()
    for item in answer["proof"]["rows"]:
        k = hashlib.sha256(rfc8785.dumps([item["table"], item["key"]])).digest()
        value = hashlib.sha256(rfc8785.dumps(item["row"])).digest()
        leaf = hashlib.sha256(b"\x00" + k + value).digest()
        siblings = [base64.b64decode(s) for s in item["siblings"]]
        assert _root_of_path(k, leaf, siblings) == state, item["table"]
        tables.add(item["table"])
    assert tables == {"licenses", "plan_versions"}
    # Go's sumdb/note verifies the signature over the four lines, state line included.
    bundle = fetch_bundle(api, 137, older_sizes[-1])
    assert int(body[1]) == int(bundle["checkpoint"].split("\n")[1])
    bundle["checkpoint"] = note
    done = go_verifier.run(bundle, tmp_path)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert f" state {body[3].split()[1]};" in done.stdout
