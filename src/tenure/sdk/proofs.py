"""Proof-carrying checks, verified as an application would (docs/state.md, "Proofs").

``verify_check`` takes the answer of ``POST /v1/check`` with ``"proof": true`` and
trusts it only when the checkpoint is signed by the ledger key, every row the
decision read hashes to that checkpoint's ``tenure-state`` root along its path, and
the pure decision (``tenure.domain.decisions.decide``, the server's own function)
gives the same answer over exactly those rows.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tenure.domain.decisions import decide
from tenure.domain.state import Row
from tenure.errors import InvalidProof, TenureError
from tenure.ledger.checkpoint import Checkpoint, open_checkpoint
from tenure.ledger.merkle import verify_consistency
from tenure.ledger.note import NoteVerifier
from tenure.ledger.statemap import root_from_path, row_leaf


class ProofRejected(TenureError):
    """A proof-carrying answer that does not prove what it says; ``reason`` names the
    rule: ``no_proof``, ``unsigned``, ``no_state_root``, ``other_checkpoint``,
    ``malformed``, ``row_not_proven``, ``decision_differs`` or ``inconsistent_history``
    (the ledger does not extend a checkpoint verified before)."""

    code = "proof_rejected"

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message, reason=reason)
        self.reason = reason


@dataclass(frozen=True)
class ProvenCheck:
    """A check whose answer was proven: the decision, the signed checkpoint it was
    taken at, and the rows it read, by table."""

    allowed: bool
    reason: str
    value: Any
    checkpoint: Checkpoint
    rows: dict[str, Row]


def verify_rows(
    proof: object, verifiers: Sequence[NoteVerifier]
) -> tuple[Checkpoint, list[tuple[str, list[Any], Row]]]:
    """Verify a ``"proof"`` (of ``/v1/check`` or ``/v1/check/batch``): its checkpoint
    signed by one of ``verifiers`` with a state root, and every row under that root.
    Returns the checkpoint and the proven ``(table, key, row)``. Raises
    ``ProofRejected``."""
    if not isinstance(proof, Mapping):
        raise ProofRejected("the answer carries no proof", "no_proof")
    try:
        checkpoint = open_checkpoint(str(proof["checkpoint"]), verifiers)
    except (TenureError, KeyError) as exc:
        raise ProofRejected(f"the proof's checkpoint does not verify: {exc}", "unsigned") from exc
    if checkpoint.state is None:
        raise ProofRejected("the proof's checkpoint states no state root", "no_state_root")
    proven = []
    try:
        for item in proof["rows"]:
            k, leaf = row_leaf(item["table"], item["key"], item["row"])
            siblings = [base64.b64decode(s, validate=True) for s in item["siblings"]]
            if root_from_path(k, leaf, siblings) != checkpoint.state:
                raise ProofRejected(
                    f"row {item['table']} {item['key']} does not hash to the signed state root",
                    "row_not_proven",
                )
            proven.append((str(item["table"]), list(item["key"]), dict(item["row"])))
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise ProofRejected(f"the proof is malformed: {exc}", "malformed") from exc
    return checkpoint, proven


def verify_history(proof: Mapping[str, Any], checkpoint: Checkpoint, known: Checkpoint) -> None:
    """Check that the ledger of ``checkpoint`` (the proof's, verified) and the one of
    ``known`` (a checkpoint verified before) are one history: the proof's
    ``"consistency"`` (asked for with ``known_size``) proves the smaller tree a prefix of
    the larger. A ledger shorter than ``known`` cannot prove it: its history was cut or
    rolled back. Raises ``ProofRejected`` (``inconsistent_history``)."""
    if known.origin != checkpoint.origin:
        raise ProofRejected("the proof's checkpoint is of another ledger", "other_checkpoint")
    older, newer = sorted((known, checkpoint), key=lambda c: c.size)
    consistency = proof.get("consistency")
    if not isinstance(consistency, Mapping):
        raise ProofRejected(
            f"the ledger does not prove it extends the checkpoint of size {known.size} "
            f"verified before (it answered at size {checkpoint.size})",
            "inconsistent_history",
        )
    try:
        if (consistency["from"], consistency["to"]) != (older.size, newer.size):
            raise ProofRejected("the consistency proof is of other sizes", "malformed")
        hashes = [base64.b64decode(h, validate=True) for h in consistency["proof"]]
        verify_consistency(older.size, newer.size, older.root, newer.root, hashes)
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise ProofRejected(f"the consistency proof is malformed: {exc}", "malformed") from exc
    except InvalidProof as exc:
        raise ProofRejected(
            f"the ledger is not an extension of the checkpoint of size {known.size} "
            f"verified before: {exc}",
            "inconsistent_history",
        ) from exc


def verify_check(
    answer: Mapping[str, Any],
    verifiers: Sequence[NoteVerifier],
    entitlement: str,
    now: datetime | None = None,
    known: Checkpoint | None = None,
) -> ProvenCheck:
    """Verify a proof-carrying check ``answer`` for ``entitlement`` against the ledger
    key(s) ``verifiers``; the decision is re-run at ``now`` (default: the clock). With
    ``known``, a checkpoint verified before, the answer must also prove its ledger
    extends it (``verify_history``). Raises ``ProofRejected``."""
    checkpoint, proven = verify_rows(answer.get("proof"), verifiers)
    if known is not None:
        verify_history(answer["proof"], checkpoint, known)
    named = answer.get("checkpoint") or {}
    if (named.get("size"), named.get("root")) != (checkpoint.size, checkpoint.root_b64):
        raise ProofRejected("the answer names another checkpoint", "other_checkpoint")
    rows = {table: row for table, _, row in proven}
    decision = decide(
        rows.get("licenses"), rows.get("plan_versions"), entitlement, now or datetime.now(UTC)
    )
    expected = (decision.allowed, decision.reason, decision.value)
    if expected != (answer.get("allowed"), answer.get("reason"), answer.get("value")):
        raise ProofRejected(
            f"the proven rows decide {expected}, not the answer given", "decision_differs"
        )
    return ProvenCheck(decision.allowed, decision.reason, decision.value, checkpoint, rows)
