"""The Ledger API over real HTTP (SPEC "Ledger API"), checked as a client would.

Proofs are checked with the tiny RFC 9162 verifier below, written from the RFC and
independent of Tenure's own Merkle code; signatures with ``open_checkpoint``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
import re
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import rfc8785

from support.api import Fetched
from support.server import SEED_EVENTS, Server, running_server
from tenure.durability.upgrades import schema_head
from tenure.errors import MalformedNote, UnverifiedNote
from tenure.ledger.checkpoint import Checkpoint, open_checkpoint
from tenure.ledger.note import NoteVerifier

PROBLEM_JSON = "application/problem+json"
API_KEY = re.compile(r"tnr_[a-z2-7]{52}")

# --------------------------------------------------------------------------------------
# An independent RFC 9162 (RFC 6962 hashing) verifier.
# --------------------------------------------------------------------------------------


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def rfc_leaf_hash(leaf: bytes) -> bytes:
    return sha256(b"\x00" + leaf)


def rfc_node_hash(left: bytes, right: bytes) -> bytes:
    return sha256(b"\x01" + left + right)


def merkle_tree_hash(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH (RFC 9162 §2.1.1) over already-hashed leaves."""
    n = len(leaf_hashes)
    if n == 0:
        return sha256(b"")
    if n == 1:
        return leaf_hashes[0]
    k = 1 << ((n - 1).bit_length() - 1)  # the largest power of two smaller than n
    return rfc_node_hash(merkle_tree_hash(leaf_hashes[:k]), merkle_tree_hash(leaf_hashes[k:]))


def verify_inclusion(
    index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 §2.1.3.2."""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = rfc_node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = rfc_node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2."""
    if first == second:
        return not proof and first_root == second_root
    if not 0 < first < second or not proof:
        return False
    path = list(proof)
    if first & (first - 1) == 0:  # first is a power of two: its root is a node of the new tree
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = rfc_node_hash(c, fr), rfc_node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = rfc_node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == first_root and sr == second_root


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def flip_bit(data: bytes) -> bytes:
    return bytes([data[0] ^ 1]) + data[1:]


# --------------------------------------------------------------------------------------
# Helpers and fixtures
# --------------------------------------------------------------------------------------


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """An RFC 9457 problem of ``status``; returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    for member in ("type", "title", "detail"):
        assert isinstance(body[member], str)
        assert body[member]
    return body


def verifiers_of(api: httpx.Client) -> list[NoteVerifier]:
    response = api.get("/v1/ledger/key")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    lines = response.text.splitlines()
    assert lines
    return [NoteVerifier.from_key_string(line) for line in lines]


def signed_checkpoint(api: httpx.Client) -> tuple[str, Checkpoint]:
    """POST a checkpoint of the current tree; return the note and what it says."""
    response = api.post("/v1/ledger/checkpoint")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text, open_checkpoint(response.text, verifiers_of(api))


@pytest.fixture(scope="module")
def verifiers(api: httpx.Client) -> list[NoteVerifier]:
    return verifiers_of(api)


@pytest.fixture(scope="module")
def events(api: httpx.Client) -> list[dict[str, Any]]:
    """Every event of the ledger, fetched in pages of 137."""
    collected: list[dict[str, Any]] = []
    for _ in range(SEED_EVENTS):  # bounded: at most one page per event
        page = api.get("/v1/ledger/events", params={"start": len(collected), "limit": 137})
        assert page.status_code == 200, page.text
        batch = page.json()["events"]
        if not batch:
            break
        collected.extend(batch)
    return collected


@pytest.fixture(scope="module")
def leaf_hashes(events: list[dict[str, Any]]) -> list[bytes]:
    return [rfc_leaf_hash(unb64(e["leaf_b64"])) for e in events]


@pytest.fixture(scope="module")
def head(api: httpx.Client) -> Checkpoint:
    """The checkpoint of the whole seeded ledger, signed on request."""
    return signed_checkpoint(api)[1]


def stored_checkpoint(api: httpx.Client, size: int, verifiers: list[NoteVerifier]) -> Checkpoint:
    response = api.get("/v1/ledger/checkpoint", params={"size": size})
    assert response.status_code == 200, response.text
    checkpoint = open_checkpoint(response.text, verifiers)
    assert checkpoint.size == size
    return checkpoint


# --------------------------------------------------------------------------------------
# Starting the server: the bootstrap owner key
# --------------------------------------------------------------------------------------


def test_first_start_prints_the_owner_key_and_url_and_writes_the_key_file_0600(
    server: Server,
) -> None:
    key = server.owner_key()
    assert API_KEY.fullmatch(key), key
    assert stat.S_IMODE(os.stat(server.key_file).st_mode) == 0o600
    stdout = server.stdout()
    assert server.url in stdout
    assert key in stdout
    # The key stands on the line that announces it, so it can be copied or grepped.
    announced = [line for line in stdout.splitlines() if "Bootstrap owner API key" in line]
    assert len(announced) == 1, stdout
    assert key in announced[0], stdout
    # The key that was printed works.
    with server.client(key) as client:
        assert client.get("/v1/ledger/key").status_code == 200


def test_a_second_start_on_the_same_data_dir_prints_no_new_key(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with running_server(data_dir, tmp_path) as first:
        key = first.owner_key()
        assert key in first.stdout()
    with running_server(data_dir, tmp_path) as second:
        stdout = second.stdout()
        assert second.url in stdout
        assert not API_KEY.search(stdout), stdout
        assert str(second.key_file) in stdout  # points at the key written on first start
        assert second.owner_key() == key
        assert stat.S_IMODE(os.stat(second.key_file).st_mode) == 0o600
        with second.client(key) as client:
            assert client.get("/v1/ledger/key").status_code == 200


# --------------------------------------------------------------------------------------
# Authentication
# --------------------------------------------------------------------------------------

PROTECTED = [
    ("GET", "/v1/ledger/checkpoint", {}),
    ("POST", "/v1/ledger/checkpoint", {}),
    ("GET", "/v1/ledger/key", {}),
    ("GET", "/v1/ledger/events", {"start": 0, "limit": 1}),
    ("GET", "/v1/ledger/proof/inclusion", {"seq": 0, "size": 1}),
    ("GET", "/v1/ledger/proof/consistency", {"from": 1, "to": 2}),
]
BAD_CREDENTIALS = {
    "no header": {},
    "scheme only": {"Authorization": "Bearer"},
    "basic scheme": {"Authorization": "Basic dXNlcjpwYXNz"},
    "unknown key": {"Authorization": "Bearer tnr_" + "a" * 52},
    "garbage key": {"Authorization": "Bearer not-a-key"},
}


@pytest.mark.parametrize(
    ("method", "path", "params"), PROTECTED, ids=[f"{m} {p}" for m, p, _ in PROTECTED]
)
@pytest.mark.parametrize("credentials", BAD_CREDENTIALS.values(), ids=BAD_CREDENTIALS.keys())
def test_requests_without_a_valid_key_get_401_problem(
    server: Server, method: str, path: str, params: dict[str, int], credentials: dict[str, str]
) -> None:
    with server.client() as client:
        response = client.request(method, path, params=params, headers=credentials)
    body = assert_problem(response, 401)
    assert body["type"].endswith("unauthenticated")
    assert response.headers["www-authenticate"].lower().startswith("bearer")


def test_an_authenticated_request_with_a_lowercase_scheme_is_accepted(
    server: Server, owner_key: str
) -> None:
    with server.client() as client:
        response = client.get("/v1/ledger/key", headers={"Authorization": f"bearer {owner_key}"})
    assert response.status_code == 200


# --------------------------------------------------------------------------------------
# Checkpoints and the verifier key
# --------------------------------------------------------------------------------------


def test_the_latest_checkpoint_is_text_plain_and_verifies_with_the_ledger_key(
    api: httpx.Client, verifiers: list[NoteVerifier], events: list[dict[str, Any]]
) -> None:
    response = api.get("/v1/ledger/checkpoint")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    checkpoint = open_checkpoint(response.text, verifiers)
    assert checkpoint.origin.endswith("/default")
    assert checkpoint.origin in {v.name for v in verifiers}
    assert checkpoint.size == len(events) == SEED_EVENTS
    # A checkpoint whose root was altered no longer verifies.
    forged = response.text.replace(checkpoint.root_b64, b64(flip_bit(checkpoint.root)), 1)
    with pytest.raises((UnverifiedNote, MalformedNote)):
        open_checkpoint(forged, verifiers)


def test_the_checkpoint_root_is_the_rfc6962_tree_of_the_served_events(
    head: Checkpoint, leaf_hashes: list[bytes]
) -> None:
    assert head.size == len(leaf_hashes)
    assert merkle_tree_hash(leaf_hashes) == head.root


def test_checkpoint_of_size_n_is_the_stored_one_or_a_404_problem(
    checkpoints_by_size: dict[int, Fetched],
    stored_checkpoint_sizes: list[int],
    verifiers: list[NoteVerifier],
    leaf_hashes: list[bytes],
) -> None:
    # The seed signed along the way and on close: there is history, ending at the head.
    assert len(stored_checkpoint_sizes) >= 2, stored_checkpoint_sizes
    assert stored_checkpoint_sizes[-1] == SEED_EVENTS
    for size, fetched in checkpoints_by_size.items():
        if fetched.status == 200:
            assert fetched.content_type.startswith("text/plain")
            checkpoint = open_checkpoint(fetched.text, verifiers)
            assert checkpoint.size == size
            assert checkpoint.root == merkle_tree_hash(leaf_hashes[:size])
        else:
            assert fetched.status == 404, (size, fetched)
            assert fetched.content_type.startswith(PROBLEM_JSON)
    assert checkpoints_by_size[SEED_EVENTS + 1].status == 404


def test_checkpoint_of_a_size_never_signed_is_404_problem(api: httpx.Client) -> None:
    response = api.get("/v1/ledger/checkpoint", params={"size": 10**9})
    body = assert_problem(response, 404)
    assert body["type"].endswith("not_found")


def test_post_checkpoint_signs_the_current_tree(
    api: httpx.Client, verifiers: list[NoteVerifier], events: list[dict[str, Any]]
) -> None:
    note, checkpoint = signed_checkpoint(api)
    assert checkpoint.size == len(events)
    # It is stored: the latest, and retrievable by its size.
    assert api.get("/v1/ledger/checkpoint").text == note
    assert api.get("/v1/ledger/checkpoint", params={"size": checkpoint.size}).text == note
    # Asking again without new events does not fork the log: same tree, same root.
    again = open_checkpoint(api.post("/v1/ledger/checkpoint").text, verifiers)
    assert (again.size, again.root) == (checkpoint.size, checkpoint.root)


# --------------------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------------------


def test_events_carry_the_exact_canonical_leaf_bytes(events: list[dict[str, Any]]) -> None:
    assert [e["seq"] for e in events] == list(range(SEED_EVENTS))
    for entry in events:
        assert set(entry) == {"seq", "leaf_b64", "event"}
        leaf = unb64(entry["leaf_b64"])
        assert leaf == rfc8785.dumps(entry["event"])
        assert entry["event"]["seq"] == entry["seq"]


def test_events_are_paged_by_start_and_limit(
    api: httpx.Client, events: list[dict[str, Any]]
) -> None:
    page = api.get("/v1/ledger/events", params={"start": 490, "limit": 1000})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("application/json")
    assert page.json()["events"] == events[490:]
    one = api.get("/v1/ledger/events", params={"start": 7, "limit": 1}).json()["events"]
    assert one == [events[7]]
    past_the_end = api.get("/v1/ledger/events", params={"start": SEED_EVENTS, "limit": 5})
    assert past_the_end.status_code == 200
    assert past_the_end.json()["events"] == []


def test_the_leaf_hash_of_each_event_is_the_inclusion_proofs_leaf_hash(
    api: httpx.Client, events: list[dict[str, Any]]
) -> None:
    for seq in sample_seqs(SEED_EVENTS):
        proof = api.get("/v1/ledger/proof/inclusion", params={"seq": seq, "size": SEED_EVENTS})
        assert proof.status_code == 200, proof.text
        leaf = unb64(events[seq]["leaf_b64"])
        assert unb64(proof.json()["leaf_hash_b64"]) == rfc_leaf_hash(leaf)


# --------------------------------------------------------------------------------------
# Proofs
# --------------------------------------------------------------------------------------


def sample_seqs(size: int) -> list[int]:
    """Edges of the tree plus a fixed random sample."""
    edges = {0, 1, 2, 3, size // 2, size - 2, size - 1} | {2**k for k in range(9) if 2**k < size}
    return sorted(edges | set(random.Random(9).sample(range(size), 12)))


def test_inclusion_proofs_verify_against_the_checkpoint_root(
    api: httpx.Client, head: Checkpoint, leaf_hashes: list[bytes]
) -> None:
    for seq in sample_seqs(head.size):
        response = api.get("/v1/ledger/proof/inclusion", params={"seq": seq, "size": head.size})
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"index", "size", "leaf_hash_b64", "proof"}
        assert (body["index"], body["size"]) == (seq, head.size)
        proof = [unb64(h) for h in body["proof"]]
        leaf_hash = unb64(body["leaf_hash_b64"])
        assert leaf_hash == leaf_hashes[seq]
        assert verify_inclusion(seq, head.size, leaf_hash, proof, head.root), seq
        # Each hash matters: a proof with one bit flipped does not verify.
        for i in range(len(proof)):
            tampered = [*proof[:i], flip_bit(proof[i]), *proof[i + 1 :]]
            assert not verify_inclusion(seq, head.size, leaf_hash, tampered, head.root)
        assert not verify_inclusion(seq, head.size, leaf_hash, proof[:-1], head.root)


def test_inclusion_proofs_in_older_trees_verify_against_their_stored_checkpoints(
    api: httpx.Client, stored_checkpoint_sizes: list[int], verifiers: list[NoteVerifier]
) -> None:
    for size in stored_checkpoint_sizes:
        if size == 0:
            continue
        checkpoint = stored_checkpoint(api, size, verifiers)
        for seq in (0, size // 3, size - 1):
            body = api.get("/v1/ledger/proof/inclusion", params={"seq": seq, "size": size}).json()
            proof = [unb64(h) for h in body["proof"]]
            leaf_hash = unb64(body["leaf_hash_b64"])
            assert verify_inclusion(seq, size, leaf_hash, proof, checkpoint.root), (seq, size)


def test_consistency_proofs_verify_between_signed_checkpoints(
    api: httpx.Client, stored_checkpoint_sizes: list[int], verifiers: list[NoteVerifier]
) -> None:
    _, head = signed_checkpoint(api)
    signed = {n: stored_checkpoint(api, n, verifiers) for n in stored_checkpoint_sizes if n}
    signed[head.size] = head
    sizes = sorted(signed)
    assert len(sizes) >= 2, sizes
    for i, old in enumerate(sizes):
        for new in sizes[i:]:
            response = api.get("/v1/ledger/proof/consistency", params={"from": old, "to": new})
            assert response.status_code == 200, response.text
            body = response.json()
            assert set(body) == {"from", "to", "proof"}
            assert (body["from"], body["to"]) == (old, new)
            proof = [unb64(h) for h in body["proof"]]
            old_root, new_root = signed[old].root, signed[new].root
            assert verify_consistency(old, new, old_root, new_root, proof), (old, new)
            if old < new:
                assert not verify_consistency(old, new, flip_bit(old_root), new_root, proof)
                tampered = [flip_bit(proof[0]), *proof[1:]]
                assert not verify_consistency(old, new, old_root, new_root, tampered)


def test_consistency_proofs_verify_against_independently_computed_roots(
    api: httpx.Client, head: Checkpoint, leaf_hashes: list[bytes]
) -> None:
    for old in (1, 2, 3, 4, 5, 7, 8, 100, 255, 256, 257, 300, 498, 499, 500):
        body = api.get("/v1/ledger/proof/consistency", params={"from": old, "to": head.size})
        assert body.status_code == 200, body.text
        proof = [unb64(h) for h in body.json()["proof"]]
        old_root = merkle_tree_hash(leaf_hashes[:old])
        assert verify_consistency(old, head.size, old_root, head.root, proof), old


# --------------------------------------------------------------------------------------
# Bad input: 400 problem with the offending field, never 500
# --------------------------------------------------------------------------------------

INCLUSION, CONSISTENCY, EVENTS = (
    "/v1/ledger/proof/inclusion",
    "/v1/ledger/proof/consistency",
    "/v1/ledger/events",
)
BAD_INPUT: list[tuple[str, dict[str, Any], str]] = [
    (INCLUSION, {"seq": SEED_EVENTS, "size": SEED_EVENTS}, "seq"),
    (INCLUSION, {"seq": 10**6, "size": SEED_EVENTS}, "seq"),
    (INCLUSION, {"seq": 3, "size": 3}, "seq"),
    (INCLUSION, {"seq": 0, "size": SEED_EVENTS + 1}, "size"),
    (INCLUSION, {"seq": 0, "size": 0}, "seq"),
    (INCLUSION, {"seq": -1, "size": 10}, "seq"),
    (INCLUSION, {"seq": 0, "size": -10}, "size"),
    (INCLUSION, {"seq": "one", "size": 10}, "seq"),
    (INCLUSION, {"seq": "1.5", "size": 10}, "seq"),
    (INCLUSION, {"seq": 1, "size": "ten"}, "size"),
    (INCLUSION, {"seq": "9" * 30, "size": 10}, "seq"),
    (INCLUSION, {"size": 10}, "seq"),
    (INCLUSION, {"seq": 1}, "size"),
    (CONSISTENCY, {"from": 10, "to": 5}, "from"),
    (CONSISTENCY, {"from": -1, "to": 5}, "from"),
    (CONSISTENCY, {"from": 1, "to": -5}, "to"),
    (CONSISTENCY, {"from": "a", "to": 5}, "from"),
    (CONSISTENCY, {"from": 1, "to": "b"}, "to"),
    (CONSISTENCY, {"from": 1, "to": SEED_EVENTS + 1}, "to"),
    (CONSISTENCY, {"from": SEED_EVENTS + 1, "to": SEED_EVENTS + 2}, "from"),
    (CONSISTENCY, {"from": 1, "to": 2**64}, "to"),
    (CONSISTENCY, {"to": 5}, "from"),
    (EVENTS, {"start": 0, "limit": 0}, "limit"),
    (EVENTS, {"start": 0, "limit": 5000}, "limit"),
    (EVENTS, {"start": 0, "limit": -1}, "limit"),
    (EVENTS, {"start": -1, "limit": 10}, "start"),
    (EVENTS, {"start": "x", "limit": 10}, "start"),
    (EVENTS, {"start": 0, "limit": "many"}, "limit"),
    ("/v1/ledger/checkpoint", {"size": -1}, "size"),
    ("/v1/ledger/checkpoint", {"size": "latest"}, "size"),
]


@pytest.mark.parametrize(
    ("path", "params", "field"),
    BAD_INPUT,
    ids=[f"{p.rsplit('/', 1)[1]}-{q}" for p, q, _ in BAD_INPUT],
)
def test_bad_input_is_a_400_problem_naming_the_field(
    api: httpx.Client, path: str, params: dict[str, Any], field: str
) -> None:
    body = assert_problem(api.get(path, params=params), 400)
    assert body["type"].endswith("invalid_input")
    assert body["field"] == field


def test_unknown_routes_are_404_problems(api: httpx.Client) -> None:
    assert_problem(api.get("/v1/ledger/nothing-here"), 404)
    assert_problem(api.delete("/v1/ledger/checkpoint"), 405)


# --------------------------------------------------------------------------------------
# Operations and documentation
# --------------------------------------------------------------------------------------


def test_healthz_and_readyz_report_the_schema_revision(server: Server) -> None:
    with server.client() as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert ready.json()["schema"] == schema_head()


def test_openapi_and_docs_describe_the_ledger_api(server: Server) -> None:
    with server.client() as client:
        spec = client.get("/openapi.json")
        docs = client.get("/docs")
    assert spec.status_code == 200
    paths = spec.json()["paths"]
    for path in (
        "/v1/ledger/checkpoint",
        "/v1/ledger/key",
        "/v1/ledger/events",
        "/v1/ledger/proof/inclusion",
        "/v1/ledger/proof/consistency",
    ):
        assert path in paths, sorted(paths)
    assert "post" in paths["/v1/ledger/checkpoint"]
    assert docs.status_code == 200
    assert docs.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in docs.text
