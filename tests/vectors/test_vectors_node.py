"""Node's ``jose`` (panva), with the rules of docs/offline.md a JOSE library leaves to
its caller, gives every JWS, JWE and key set vector its manifest verdict:
tests/vectors/node/check_vectors.js, as a TypeScript implementer would write it."""

from __future__ import annotations

from typing import Any

from support.vectors import Results, without_detail

KINDS = frozenset({"offline-token", "revocation-list", "license-file", "keyset-note"})


def test_node_jose_gives_each_vector_its_manifest_verdict(
    vector: dict[str, Any], node_results: Results
) -> None:
    assert vector["id"] in node_results, "the Node checker skipped this vector"
    assert without_detail(node_results[vector["id"]]) == vector["expect"]
