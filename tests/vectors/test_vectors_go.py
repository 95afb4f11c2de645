"""Go's reference implementation of signed notes and transparency logs
(golang.org/x/mod/sumdb/note and tlog) gives every checkpoint, proof and key set note
vector its manifest verdict: tests/vectors/go/main.go, as a Go implementer would
write it."""

from __future__ import annotations

from typing import Any

from support.vectors import Results, without_detail

KINDS = frozenset({"checkpoint", "inclusion", "consistency", "keyset-note"})


def test_go_sumdb_gives_each_vector_its_manifest_verdict(
    vector: dict[str, Any], go_results: Results
) -> None:
    assert vector["id"] in go_results, "the Go checker skipped this vector"
    assert without_detail(go_results[vector["id"]]) == vector["expect"]
