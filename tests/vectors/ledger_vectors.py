"""Ledger vectors: signed checkpoints, inclusion and consistency proofs, tampered ones.

The leaves are the first events of the golden ledger of release 0.1.0
(tests/fixtures/golden-0.1.0/events.jsonl): real Tenure events, which are never
regenerated. Proofs have the shape of the Ledger API's answers (docs/ledger.md).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from tenure.ledger.checkpoint import Checkpoint, sign_checkpoint
from tenure.ledger.merkle import (
    Frontier,
    NodeId,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    tree_hash,
)
from tenure.ledger.note import sign_note

from .collection import LEDGER_KEY, Collection, accept, reject
from .world import IMPOSTOR_SIGNER, LEDGER_SIGNER, ORIGIN, OTHER_ORIGIN_SIGNER

GOLDEN = Path(__file__).parents[1] / "fixtures" / "golden-0.1.0" / "events.jsonl"
LEAVES = 13
CHECKPOINT_SIZES = (4, 7, 13)
INCLUSIONS = ((0, 13), (6, 13), (12, 13), (3, 7))
CONSISTENCIES = ((4, 13), (7, 13), (4, 7), (13, 13))
OTHER_ORIGIN_KEY = "keys/other-origin.vkey"
EVENTS = "ledger/events.json"


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def flip(raw: bytes) -> bytes:
    """``raw`` with the lowest bit of its last byte flipped."""
    return raw[:-1] + bytes([raw[-1] ^ 1])


def golden_leaves(count: int = LEAVES) -> list[bytes]:
    """The leaf bytes (canonical JSON events) of the first ``count`` golden events."""
    lines = GOLDEN.read_bytes().split(b"\n")
    return lines[:count]


class MemoryTree:
    """Every complete subtree hash of a list of leaves; a ``HashReader`` for proofs."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self.nodes: dict[NodeId, bytes] = {}
        frontier = Frontier()
        for leaf in leaves:
            for level, index, digest in frontier.append(leaf_hash(leaf)):
                self.nodes[level, index] = digest

    def read_hashes(self, ids: Sequence[NodeId]) -> list[bytes]:
        return [self.nodes[node] for node in ids]

    def root(self, size: int) -> bytes:
        return tree_hash(size, self)


def checkpoint_facts(checkpoint: Checkpoint) -> dict[str, Any]:
    return {"origin": checkpoint.origin, "size": checkpoint.size, "root": checkpoint.root_b64}


def build_ledger(out: Collection) -> dict[str, Any]:
    """Write the ledger vectors; return the head checkpoint as a token's ``ckpt`` claim."""
    leaves = golden_leaves()
    tree = MemoryTree(leaves)
    out.file(LEDGER_KEY, LEDGER_SIGNER.verifier.key_string() + "\n")
    out.file(OTHER_ORIGIN_KEY, OTHER_ORIGIN_SIGNER.verifier.key_string() + "\n")
    out.json_file(EVENTS, events_document(leaves))
    heads = {size: Checkpoint(ORIGIN, size, tree.root(size)) for size in CHECKPOINT_SIZES}
    for size, head in heads.items():
        path = out.file(f"ledger/checkpoint-{size}.note", sign_checkpoint(head, [LEDGER_SIGNER]))
        out.vector(
            "checkpoint",
            f"size-{size}",
            path,
            f"A checkpoint of the first {size} events, signed by the ledger key.",
            {"ledger_key": LEDGER_KEY},
            accept(**checkpoint_facts(head)),
        )
    tampered_checkpoints(out, heads[LEAVES])
    inclusion_vectors(out, tree, leaves)
    consistency_vectors(out, tree, leaves)
    return {"size": LEAVES, "root": heads[LEAVES].root_b64}


def events_document(leaves: Sequence[bytes]) -> dict[str, Any]:
    """The leaves as ``GET /v1/ledger/events`` answers them (``leaf_b64`` is the truth)."""
    return {
        "events": [
            {"seq": seq, "leaf_b64": b64(leaf), "event": orjson.loads(leaf)}
            for seq, leaf in enumerate(leaves)
        ]
    }


def tampered_checkpoints(out: Collection, head: Checkpoint) -> None:
    genuine = sign_checkpoint(head, [LEDGER_SIGNER])
    text, signatures = genuine.split("\n\n", 1)
    forged_root = genuine.replace(head.root_b64, b64(flip(head.root)))
    prefix, signature = signatures.rstrip("\n").rsplit(" ", 1)
    bad_signature = f"{text}\n\n{prefix} {b64(flip(base64.b64decode(signature)))}\n"
    cases: list[tuple[str, str, str, str, str]] = [
        (
            "root-altered",
            forged_root,
            "The root line was changed after signing.",
            LEDGER_KEY,
            "unverified_note",
        ),
        (
            "impostor-key",
            sign_checkpoint(head, [IMPOSTOR_SIGNER]),
            "Signed by another key that has the ledger key's name (its key id differs).",
            LEDGER_KEY,
            "unverified_note",
        ),
        (
            "signature-altered",
            bad_signature,
            "The ledger key's signature with one bit flipped.",
            LEDGER_KEY,
            "unverified_note",
        ),
        (
            "unsigned",
            text + "\n",
            "The checkpoint text without any signature line.",
            LEDGER_KEY,
            "malformed_note",
        ),
        (
            "origin-not-signer",
            sign_note(head.body(), [OTHER_ORIGIN_SIGNER]),
            "Validly signed by a trusted key whose name is not the checkpoint's origin.",
            OTHER_ORIGIN_KEY,
            "malformed_note",
        ),
    ]
    for name, note, description, key, reason in cases:
        path = out.file(f"ledger/tampered/checkpoint-13-{name}.note", note)
        out.vector(
            "checkpoint",
            name,
            path,
            description,
            {"ledger_key": key},
            reject(reason),
        )


def inclusion_document(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> Any:
    """An inclusion proof as ``GET /v1/ledger/proof/inclusion`` answers it."""
    return {
        "index": index,
        "size": size,
        "leaf_hash_b64": b64(leaf_hash(leaf)),
        "proof": [b64(digest) for digest in proof],
    }


def inclusion_vectors(out: Collection, tree: MemoryTree, leaves: Sequence[bytes]) -> None:
    for index, size in INCLUSIONS:
        document = inclusion_document(
            index, size, leaves[index], inclusion_proof(index, size, tree)
        )
        path = out.json_file(f"ledger/inclusion-{index}-in-{size}.json", document)
        out.vector(
            "inclusion",
            f"{index}-in-{size}",
            path,
            f"Event {index} is in the tree of checkpoint {size}.",
            inclusion_inputs(size),
            accept(),
        )
    proof = inclusion_proof(6, LEAVES, tree)
    genuine = inclusion_document(6, LEAVES, leaves[6], proof)
    altered = [*leaves]
    altered[6] = leaves[6].replace(b'"schema":1', b'"schema":2', 1)
    assert altered[6] != leaves[6]
    events = out.json_file("ledger/tampered/events-6-altered.json", events_document(altered))
    cases = [
        *damaged_hashes(genuine),
        (
            "other-index",
            {**inclusion_document(7, LEAVES, leaves[7], proof)},
            "Event 7 with the proof of event 6.",
            {},
        ),
        (
            "leaf-altered",
            genuine,
            "The genuine proof of event 6, but event 6's leaf was altered.",
            {"events": events},
        ),
        (
            "size-mismatch",
            inclusion_document(3, 7, leaves[3], inclusion_proof(3, 7, tree)),
            "A proof into the tree of size 7, checked against checkpoint 13.",
            {},
        ),
    ]
    tampered_proofs(out, "inclusion", "inclusion-6-in-13", inclusion_inputs(LEAVES), cases)


TamperedProof = tuple[str, Any, str, dict[str, Any]]
"""A name, the proof document, a description and the inputs it changes."""


def damaged_hashes(genuine: dict[str, Any]) -> list[TamperedProof]:
    """``genuine`` with its first hash flipped, its last hash dropped, a hash added."""
    hashes = genuine["proof"]
    flipped = b64(flip(base64.b64decode(hashes[0])))
    return [
        (
            "hash-flipped",
            {**genuine, "proof": [flipped, *hashes[1:]]},
            "One hash of the proof has a bit flipped.",
            {},
        ),
        (
            "hash-dropped",
            {**genuine, "proof": hashes[:-1]},
            "The proof's last hash is missing.",
            {},
        ),
        (
            "hash-added",
            {**genuine, "proof": [*hashes, hashes[0]]},
            "The proof has one hash too many.",
            {},
        ),
    ]


def tampered_proofs(
    out: Collection, kind: str, stem: str, inputs: dict[str, Any], cases: list[TamperedProof]
) -> None:
    """Each case as ``ledger/tampered/<stem>-<name>.json``, refused as ``invalid_proof``."""
    for name, document, description, changes in cases:
        path = out.json_file(f"ledger/tampered/{stem}-{name}.json", document)
        out.vector(kind, name, path, description, {**inputs, **changes}, reject("invalid_proof"))


def inclusion_inputs(size: int) -> dict[str, Any]:
    return {
        "ledger_key": LEDGER_KEY,
        "checkpoint": f"ledger/checkpoint-{size}.note",
        "events": EVENTS,
    }


def consistency_document(old: int, new: int, proof: Sequence[bytes]) -> Any:
    """A consistency proof as ``GET /v1/ledger/proof/consistency`` answers it."""
    return {"from": old, "to": new, "proof": [b64(digest) for digest in proof]}


def consistency_inputs(old: int, new: int) -> dict[str, Any]:
    return {
        "ledger_key": LEDGER_KEY,
        "old_checkpoint": f"ledger/checkpoint-{old}.note",
        "checkpoint": f"ledger/checkpoint-{new}.note",
    }


def consistency_vectors(out: Collection, tree: MemoryTree, leaves: Sequence[bytes]) -> None:
    for old, new in CONSISTENCIES:
        document = consistency_document(old, new, consistency_proof(old, new, tree))
        path = out.json_file(f"ledger/consistency-{old}-to-{new}.json", document)
        out.vector(
            "consistency",
            f"{old}-to-{new}",
            path,
            f"The tree of checkpoint {old} is a prefix of the tree of checkpoint {new}.",
            consistency_inputs(old, new),
            accept(),
        )
    fork = fork_checkpoint(out, leaves)
    genuine = consistency_document(7, LEAVES, consistency_proof(7, LEAVES, tree))
    cases = [
        *damaged_hashes(genuine),
        (
            "fork",
            genuine,
            "The genuine proof, but the old checkpoint is a validly signed checkpoint of "
            "size 7 over different events: a split view.",
            {"old_checkpoint": fork},
        ),
        (
            "size-mismatch",
            consistency_document(4, LEAVES, consistency_proof(4, LEAVES, tree)),
            "A proof from size 4, checked against the checkpoint of size 7.",
            {},
        ),
    ]
    inputs = consistency_inputs(7, LEAVES)
    tampered_proofs(out, "consistency", "consistency-7-to-13", inputs, cases)


def fork_checkpoint(out: Collection, leaves: Sequence[bytes]) -> str:
    """A checkpoint of size 7, signed by the ledger key, over another event 5."""
    forked = [*leaves[:7]]
    forked[5] = leaves[5].replace(b'"schema":1', b'"schema":2', 1)
    head = Checkpoint(ORIGIN, 7, MemoryTree(forked).root(7))
    return out.file(
        "ledger/tampered/checkpoint-7-fork.note", sign_checkpoint(head, [LEDGER_SIGNER])
    )
