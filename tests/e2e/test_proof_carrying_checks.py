"""Proof-carrying checks (issue 17, docs/state.md "Proofs"): ``POST /v1/check`` with
``"proof": true`` answers with every row the decision read and its path to the
signed state root; the SDK trusts such an answer only when it proves, and says which
rule a forged one breaks."""

from __future__ import annotations

import base64
import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from support.server import Server, seeded_server
from tenure.domain.decisions import decide
from tenure.ledger.note import NoteSigner, NoteVerifier
from tenure.sdk import LicenseClient, ProofRejected, verify_check, verify_rows


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with seeded_server(tmp_path_factory, "proofs") as running:
        yield running


@pytest.fixture(scope="module")
def owner(server: Server) -> Any:
    with server.client(server.owner_key()) as client:
        yield client


@pytest.fixture(scope="module")
def ledger_key(owner: httpx.Client) -> str:
    return owner.get("/v1/ledger/key").text.strip()


def _verifiers(ledger_key: str) -> list[NoteVerifier]:
    return [NoteVerifier.from_key_string(k) for k in ledger_key.split()]


def _proven(owner: httpx.Client, serial: str, entitlement: str) -> dict[str, Any]:
    body = {"license": serial, "entitlement": entitlement, "proof": True}
    answer = owner.post("/v1/check", json=body)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def _serial(owner: httpx.Client, status: str) -> str:
    listed = owner.get("/v1/licenses", params={"status": status, "limit": 1}).json()
    return str(listed["licenses"][0]["serial"])


@pytest.mark.parametrize("status", ["active", "revoked"])
def test_a_proven_answer_verifies_and_decides_the_same(
    owner: httpx.Client, ledger_key: str, status: str
) -> None:
    serial = _serial(owner, status)
    answer = _proven(owner, serial, "seats")
    proven = verify_check(answer, _verifiers(ledger_key), "seats")
    assert (proven.allowed, proven.reason) == (answer["allowed"], answer["reason"])
    assert proven.rows["licenses"]["serial"] == serial
    assert proven.checkpoint.size == answer["checkpoint"]["size"]
    assert proven.allowed is (status == "active")


def _flip(text: str) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[0] ^= 1
    return base64.b64encode(bytes(raw)).decode()


def _row_edited(answer: dict[str, Any]) -> None:
    answer["proof"]["rows"][0]["row"]["status"] = "active"


def _sibling_flipped(answer: dict[str, Any]) -> None:
    row = answer["proof"]["rows"][0]
    row["siblings"] = [_flip(row["siblings"][0]), *row["siblings"][1:]]


def _answer_flipped(answer: dict[str, Any]) -> None:
    answer["allowed"], answer["reason"] = True, "ok"


def _no_proof(answer: dict[str, Any]) -> None:
    del answer["proof"]


def _state_line_edited(answer: dict[str, Any]) -> None:
    lines = answer["proof"]["checkpoint"].split("\n")
    name, value = lines[3].split(" ")
    lines[3] = f"{name} {_flip(value)}"
    answer["proof"]["checkpoint"] = "\n".join(lines)


FORGERIES = {
    "row_not_proven": _row_edited,
    "decision_differs": _answer_flipped,
    "no_proof": _no_proof,
    "unsigned": _state_line_edited,
}


@pytest.mark.parametrize(("reason", "forge"), FORGERIES.items(), ids=FORGERIES.keys())
def test_a_forged_answer_is_rejected_naming_the_rule(
    owner: httpx.Client, ledger_key: str, reason: str, forge: Any
) -> None:
    answer = _proven(owner, _serial(owner, "revoked"), "seats")
    verify_check(copy.deepcopy(answer), _verifiers(ledger_key), "seats")  # intact: proves
    forge(answer)
    with pytest.raises(ProofRejected) as rejected:
        verify_check(answer, _verifiers(ledger_key), "seats")
    assert rejected.value.reason == reason


def test_a_flipped_sibling_or_another_key_is_rejected(owner: httpx.Client, ledger_key: str) -> None:
    answer = _proven(owner, _serial(owner, "active"), "seats")
    other = NoteSigner("tenure.localhost/ledger/default", Ed25519PrivateKey.generate())
    with pytest.raises(ProofRejected) as unsigned:
        verify_check(answer, [other.verifier], "seats")
    assert unsigned.value.reason == "unsigned"
    assert answer["proof"]["rows"][0]["siblings"], "a seeded store's row has siblings"
    _sibling_flipped(answer)
    with pytest.raises(ProofRejected) as bent:
        verify_check(answer, _verifiers(ledger_key), "seats")
    assert bent.value.reason == "row_not_proven"


def test_the_sdk_checks_online_and_proves_the_answer(
    server: Server, owner: httpx.Client, ledger_key: str, tmp_path: Path
) -> None:
    template = owner.get(f"/v1/licenses/{_serial(owner, 'active')}").json()
    issued = owner.post(
        "/v1/licenses",
        json={**{k: template[k] for k in ("product", "plan", "customer")}, "order_ref": "proof-1"},
    )
    assert issued.status_code == 201, issued.text
    license = issued.json()
    with LicenseClient(
        server.url,
        license["key"],
        license["serial"],
        "device-1",
        tmp_path / "cache",
        refresh=False,
        ledger_key=ledger_key,
    ) as client:
        proven = client.check_proven("seats")
        assert proven.rows["licenses"]["serial"] == license["serial"]
        assert proven.checkpoint.size >= 1
    with (
        LicenseClient(
            server.url, license["key"], license["serial"], "device-1", tmp_path / "c2",
            refresh=False,
        ) as unanchored,
        pytest.raises(ProofRejected),
    ):  # fmt: skip
        unanchored.check_proven("seats")


def test_a_batch_carries_one_proof_of_every_row_it_read(
    owner: httpx.Client, ledger_key: str
) -> None:
    serials = [_serial(owner, "active"), _serial(owner, "revoked")]
    entitlements = ("seats", "feature:nope")
    questions = [{"license": s, "entitlement": e} for s in serials for e in entitlements]
    batch = owner.post("/v1/check/batch", json={"checks": questions, "proof": True})
    assert batch.status_code == 200, batch.text
    answer = batch.json()
    checkpoint, rows = verify_rows(answer["proof"], _verifiers(ledger_key))
    licenses = {key[0]: row for table, key, row in rows if table == "licenses"}
    plans = {tuple(key): row for table, key, row in rows if table == "plan_versions"}
    assert set(licenses) == set(serials)
    assert len(rows) == len(licenses) + len(plans)  # each row once
    now = datetime.now(UTC)
    for question, result in zip(questions, answer["results"], strict=True):
        assert result["checkpoint"]["size"] == checkpoint.size
        row = licenses[question["license"]]
        plan = plans.get((row["plan"], row["plan_version"]))
        decided = decide(row, plan, question["entitlement"], now)
        assert (decided.allowed, decided.reason) == (result["allowed"], result["reason"])
    plain = owner.post("/v1/check/batch", json={"checks": questions})
    assert "proof" not in plain.json()
