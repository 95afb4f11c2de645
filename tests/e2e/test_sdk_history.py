"""The SDK's cached checkpoint catches a rewritten history (issue 17, docs/state.md
"What catches a rewritten history"): every proven check after the first asks for the
consistency proof from the checkpoint it verified before, and rejects a ledger that
is shorter than that checkpoint or does not extend it."""

from __future__ import annotations

import base64
import copy
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.cli import tenure
from support.server import Server, running_server, seed_data_dir
from support.sqlite import cut_history
from tenure.ledger.checkpoint import open_checkpoint
from tenure.ledger.note import NoteVerifier
from tenure.sdk import LicenseClient, ProofRejected, verify_check
from tenure.sdk.cache import CHECKPOINT_FILE


def _issue(owner: httpx.Client) -> dict[str, Any]:
    listed = owner.get("/v1/licenses", params={"status": "active", "limit": 1}).json()
    template = listed["licenses"][0]
    fields = {k: template[k] for k in ("product", "plan", "customer")}
    issued = owner.post("/v1/licenses", json={**fields, "order_ref": "history-1"})
    assert issued.status_code == 201, issued.text
    return dict(issued.json())


def _write(owner: httpx.Client, count: int, tag: str) -> None:
    for index in range(count):
        made = owner.post(
            "/v1/customers",
            json={"name": f"{tag} {index}", "email": f"{tag}{index}@example.com"},
        )
        assert made.status_code == 201, made.text


def _client(server: Server, license: dict[str, Any], cache: Path, key: str) -> LicenseClient:
    return LicenseClient(
        server.url, license["key"], license["serial"], "device-1", cache,
        refresh=False, ledger_key=key,
    )  # fmt: skip


def _cached_size(cache: Path, key: str) -> int:
    verifiers = [NoteVerifier.from_key_string(k) for k in key.split()]
    return open_checkpoint((cache / CHECKPOINT_FILE).read_text(), verifiers).size


def test_the_cached_checkpoint_moves_forward_and_a_cut_history_is_rejected(
    tmp_path: Path,
) -> None:
    data_dir, logs, cache = tmp_path / "data", tmp_path / "logs", tmp_path / "cache"
    seed_data_dir(data_dir, events=200, seed=23)
    logs.mkdir()
    with running_server(data_dir, logs) as server, server.client(server.owner_key()) as owner:
        key = owner.get("/v1/ledger/key").text.strip()
        license = _issue(owner)
        _write(owner, 6, "before")
        with _client(server, license, cache, key) as client:
            first = client.check_proven("seats")
            assert _cached_size(cache, key) == first.checkpoint.size
            _write(owner, 2, "between")
            second = client.check_proven("seats")
        assert second.checkpoint.size > first.checkpoint.size
        assert _cached_size(cache, key) == second.checkpoint.size
        known = second.checkpoint.size

    cut = cut_history(data_dir, 4)
    assert cut < known
    assert tenure("state", "rebuild", "--data-dir", data_dir, "--accept-change").code == 0
    with running_server(data_dir, logs) as server, server.client(server.owner_key()) as owner:
        with _client(server, license, cache, key) as client:
            with pytest.raises(ProofRejected) as shorter:
                client.check_proven("seats")
            assert shorter.value.reason == "inconsistent_history"
            assert f"size {known}" in str(shorter.value)
            _write(owner, 8, "rewritten")  # longer than before, another history
            with pytest.raises(ProofRejected) as other:
                client.check_proven("seats")
            assert other.value.reason == "inconsistent_history"
        assert _cached_size(cache, key) == known  # a rejected answer moves nothing
        (cache / CHECKPOINT_FILE).unlink()  # the operator's word: forget the old history
        with _client(server, license, cache, key) as client:
            assert client.check_proven("seats").checkpoint.size > known


def test_the_consistency_proof_is_checked_and_needs_a_proof(tmp_path: Path) -> None:
    data_dir, logs = tmp_path / "data", tmp_path / "logs"
    seed_data_dir(data_dir, events=120, seed=29)
    logs.mkdir()
    with running_server(data_dir, logs) as server, server.client(server.owner_key()) as owner:
        key = owner.get("/v1/ledger/key").text.strip()
        verifiers = [NoteVerifier.from_key_string(k) for k in key.split()]
        license = _issue(owner)
        body = {"license": license["serial"], "entitlement": "seats", "proof": True}
        known = verify_check(owner.post("/v1/check", json=body).json(), verifiers, "seats")
        _write(owner, 3, "later")

        refused = owner.post("/v1/check", json={**body, "proof": False, "known_size": 1})
        assert refused.status_code == 400
        assert refused.json()["field"] == "known_size"

        answer = owner.post("/v1/check", json={**body, "known_size": known.checkpoint.size})
        assert answer.status_code == 200, answer.text
        consistency = answer.json()["proof"]["consistency"]
        assert consistency["from"] == known.checkpoint.size
        assert consistency["to"] == answer.json()["checkpoint"]["size"] > known.checkpoint.size
        verify_check(answer.json(), verifiers, "seats", known=known.checkpoint)

        bent = copy.deepcopy(answer.json())
        hashes = bent["proof"]["consistency"]["proof"]
        assert hashes, "only equal sizes or size 0 have an empty proof"
        hashes[0] = base64.b64encode(bytes(32)).decode()
        with pytest.raises(ProofRejected) as rejected:
            verify_check(bent, verifiers, "seats", known=known.checkpoint)
        assert rejected.value.reason == "inconsistent_history"

        del bent["proof"]["consistency"]
        with pytest.raises(ProofRejected) as missing:
            verify_check(bent, verifiers, "seats", known=known.checkpoint)
        assert missing.value.reason == "inconsistent_history"
