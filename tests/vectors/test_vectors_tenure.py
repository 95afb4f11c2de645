"""Every conformance vector gets its manifest verdict from Tenure's own verifiers: the
spec's rules (``jws.verify`` and the trust anchor), the SDK's token and revocation
checks, ``license_file.read``, the key set trust anchor, and ``tenure.ledger``'s
checkpoints and proofs."""

from __future__ import annotations

from typing import Any

from support.vectors import VECTORS

from .tenure_checker import CHECKERS, VectorFiles, verdicts

KINDS = frozenset(CHECKERS)


def test_tenure_gives_each_vector_its_manifest_verdict(vector: dict[str, Any]) -> None:
    for verifier, outcome in verdicts(vector, VectorFiles(VECTORS)).items():
        assert outcome == vector["expect"], f"{verifier}: {outcome}"
