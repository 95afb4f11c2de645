"""Entitlement checks (SPEC "Decisions and the audit log"): ``POST /v1/check``.

A check is a question, so an unknown license is an answer ("no", reason
``unknown_license``), not an error. Each call reads the license, its plan version
and the latest signed checkpoint in one read transaction, then lets the pure
``tenure.domain.decisions.decide`` answer. Nothing here writes. One function per
operation: ``check`` (one question) and ``check_many`` (a batch, one snapshot).
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, NotRequired, TypeVar, cast

from pydantic import Field
from typing_extensions import TypedDict

from tenure.crypto.keystore import hash_license_key
from tenure.domain.answers import Base64, NonNegative, closed
from tenure.domain.decisions import CheckStatus, Reason, decide
from tenure.domain.licensekeys import hash_legacy_key, is_serial, is_tenure_key
from tenure.domain.state import Row
from tenure.domain.values import EntitlementValue, Serial, Time
from tenure.errors import Forbidden, InvalidInput, Unauthenticated
from tenure.ledger.merkle import consistency_proof
from tenure.service.queries import ConsistencyProof
from tenure.service.state_guard import ReadRow, StateGuard
from tenure.store.unit import Store, Transaction

MAX_BATCH = 1000


@dataclass(frozen=True, slots=True)
class CheckItem:
    """One question of a batch: may ``license`` (serial or key) use ``entitlement``?"""

    license: str
    entitlement: str
    fingerprint: str | None = None


def find_license(tx: Transaction, account: str, license: str) -> Row | None:
    """The license named by ``license`` — a serial, a license key, or the key it had
    in the system it was imported from (docs/import.md) — or None.

    Only keys' hashes are stored, so a key is looked up by its hash. Only a Tenure
    key misses the lookup by key by design, so only others pay for the legacy one."""
    if is_serial(license):
        return tx.projection.row(account, "licenses", (license,))
    found = tx.licenses.by_key(account, hash_license_key(license))
    if found is None and not is_tenure_key(license):
        found = tx.licenses.by_legacy_key(account, hash_legacy_key(license))
    return found


@closed
class DecisionAnswer(TypedDict):
    """A decision as the API answers it."""

    allowed: bool
    reason: Reason
    value: EntitlementValue | None
    status: CheckStatus
    expires_at: Time | None


@closed
class CheckpointRef(TypedDict):
    size: NonNegative
    root: Base64


@closed
class ProvenRow(TypedDict):
    """A row the decision read, with its path to the checkpoint's state root."""

    table: str
    key: list[str | int]
    row: dict[str, Any]
    siblings: Annotated[
        list[Base64], Field(description="siblings[i]: the other child at depth i+1 (state.md)")
    ]


@closed
class StateProof(TypedDict):
    """Every row the decision read, proven under the ``tenure-state`` root of a signed
    checkpoint of exactly the state it read (docs/state.md, "Proofs")."""

    checkpoint: Annotated[str, Field(description="the signed checkpoint (C2SP signed note)")]
    rows: list[ProvenRow]
    consistency: NotRequired[
        Annotated[
            ConsistencyProof,
            Field(
                description="with known_size: the RFC 9162 consistency proof from that "
                "size to the checkpoint's (absent when known_size is beyond it)"
            ),
        ]
    ]


@closed
class CheckAnswer(DecisionAnswer):
    """A decision with the latest signed checkpoint (null before
    the first), and ``serial`` only when the license was named by its serial."""

    checkpoint: Annotated[CheckpointRef | None, Field(description="the latest signed checkpoint")]
    serial: NotRequired[Annotated[Serial, Field(description="only when asked by serial")]]
    proof: NotRequired[Annotated[StateProof, Field(description='only with "proof": true')]]


@closed
class CheckResults(TypedDict):
    """The answers of a batch, in the order asked (and with ``"proof": true`` the proof
    of every row they read, under one signed state root)."""

    results: list[CheckAnswer]
    proof: NotRequired[Annotated[StateProof, Field(description='only with "proof": true')]]


def _checkpoint_json(tx: Transaction, account: str) -> CheckpointRef | None:
    stored = tx.ledger.checkpoint(account)
    if stored is None:
        return None
    return {"size": stored.size, "root": base64.b64encode(stored.root).decode()}


@dataclass(frozen=True, slots=True)
class Decided:
    """A check's answer, and the serial of the license it was about (None if unknown):
    the answer shows a serial only to whoever named it, the audit log always."""

    answer: CheckAnswer
    serial: str | None
    read: tuple[ReadRow, ...] = ()
    """The projection rows the decision read, ``(table, key, row)``."""


def _answer(
    tx: Transaction,
    account: str,
    item: CheckItem,
    now: datetime,
    checkpoint: CheckpointRef | None,
) -> Decided:
    license_row = find_license(tx, account, item.license)
    plan_row = None
    if license_row is not None:
        key = (license_row["plan"], license_row["plan_version"])
        plan_row = tx.projection.row(account, "plan_versions", key)
    return answer_from(item, license_row, plan_row, now, checkpoint)


def answer_from(
    item: CheckItem,
    license_row: Row | None,
    plan_row: Row | None,
    now: datetime,
    checkpoint: CheckpointRef | None,
) -> Decided:
    """The decision on ``item`` given the rows it reads (the license ``item`` names and
    its plan version, None where there is none) and the checkpoint read with them."""
    decision = decide(license_row, plan_row, item.entitlement, now)
    read: list[ReadRow] = []
    if license_row is not None:
        read.append(("licenses", (license_row["serial"],), license_row))
    if plan_row is not None:
        read.append(("plan_versions", (plan_row["plan"], plan_row["version"]), plan_row))
    answer: CheckAnswer = {
        "allowed": decision.allowed,
        "reason": decision.reason,
        "value": decision.value,
        "status": decision.status,
        "expires_at": decision.expires_at,
        "checkpoint": checkpoint,
    }
    # Echo the serial only to a caller who named it: a key never reveals its serial.
    if license_row is not None and is_serial(item.license):
        answer["serial"] = license_row["serial"]
    serial = None if license_row is None else license_row["serial"]
    return Decided(answer, serial, tuple(read))


def check(
    store: Store, account: str, item: CheckItem, now: datetime, guard: StateGuard | None = None
) -> Decided:
    """Decide whether ``item.license`` (serial or key) of ``account`` grants
    ``item.entitlement`` at ``now``.

    The answer is the ``decide(...)`` decision plus ``"checkpoint": {"size", "root"}``
    (the latest signed checkpoint of the account, read in the same transaction; None
    if none was signed yet) and ``"serial"`` when the caller named the license by a
    serial that exists. An unknown license is the answer ``unknown_license``.
    ``item.fingerprint`` is accepted for activation-aware checks and not used yet.
    Raises ``InvalidInput`` (field ``entitlement``) for a malformed entitlement key
    and for a naive ``now``, and ``StateUnverified`` when ``guard`` found the
    account's state unproven.
    """
    if guard is None:
        with store.quick_read() as tx:
            return _answer(tx, account, item, now, _checkpoint_json(tx, account))

    def one(tx: Transaction) -> list[Decided]:
        return [_answer(tx, account, item, now, _checkpoint_json(tx, account))]

    return _proven(store, account, guard, one, store.quick_read)[0]


def check_many(
    store: Store,
    account: str,
    items: Sequence[CheckItem],
    now: datetime,
    guard: StateGuard | None = None,
) -> list[Decided]:
    """``check`` each item, in order, all in one read transaction (one snapshot).

    Raises ``InvalidInput`` with field ``checks`` for more than ``MAX_BATCH`` items,
    and with field ``checks[i].entitlement`` for the first malformed entitlement key.
    """
    if len(items) > MAX_BATCH:
        raise InvalidInput(f"a batch holds at most {MAX_BATCH} checks", field="checks")
    many = _deciding_many(account, items, now)
    if guard is None:
        with store.read() as tx:
            return many(tx)
    return _proven(store, account, guard, many, store.read)


def check_many_with_proof(
    store: Store,
    account: str,
    items: Sequence[CheckItem],
    now: datetime,
    guard: StateGuard,
    sign: Callable[[], object],
    known_size: int | None = None,
) -> tuple[list[Decided], StateProof]:
    """``check_many`` decided on a state whose checkpoint is signed, with the proof of
    every row the decisions read (each once), as ``check_with_proof``."""
    if len(items) > MAX_BATCH:
        raise InvalidInput(f"a batch holds at most {MAX_BATCH} checks", field="checks")
    many = _deciding_many(account, items, now)

    def decide_in(tx: Transaction) -> tuple[list[Decided], Sequence[ReadRow]]:
        decided = many(tx)
        read = {(table, key): (table, key, row) for d in decided for table, key, row in d.read}
        return decided, list(read.values())

    return _with_proof(store, account, guard, sign, decide_in, known_size)


def _deciding_many(
    account: str, items: Sequence[CheckItem], now: datetime
) -> Callable[[Transaction], list[Decided]]:
    def many(tx: Transaction) -> list[Decided]:
        answers: list[Decided] = []
        checkpoint = _checkpoint_json(tx, account)
        for index, item in enumerate(items):
            try:
                answers.append(_answer(tx, account, item, now, checkpoint))
            except InvalidInput as error:
                raise in_batch(index, error) from error
        return answers

    return many


def in_batch(index: int, error: InvalidInput) -> InvalidInput:
    """``error`` of the batch's item ``index``, its field named ``checks[index]...``."""
    field = f"checks[{index}]" + (f".{error.field}" if error.field else "")
    return InvalidInput(error.message, field=field)


def check_with_proof(
    store: Store,
    account: str,
    item: CheckItem,
    now: datetime,
    guard: StateGuard,
    sign: Callable[[], object],
    known_size: int | None = None,
) -> Decided:
    """``check``, decided on a state whose checkpoint is signed, with ``"proof"``: every
    row the decision read and its path to that checkpoint's state root.

    When the head has no signed checkpoint yet (or the writer has not published its
    map), ``sign()`` asks the ledger writer for one and the check is read again.
    With ``known_size`` (the size of a checkpoint the client verified before) the
    proof also carries the consistency proof from that size to its checkpoint's.
    Raises ``StateUnverified`` when no proof can be made."""

    def decide_in(tx: Transaction) -> tuple[Decided, Sequence[ReadRow]]:
        decided = _answer(tx, account, item, now, _checkpoint_json(tx, account))
        return decided, decided.read

    decided, proof = _with_proof(store, account, guard, sign, decide_in, known_size)
    decided.answer["proof"] = proof
    return decided


def prove_license(
    store: Store, account: str, serial: str, guard: StateGuard, sign: Callable[[], object]
) -> StateProof | None:
    """The proof of the license ``serial`` and its plan version (the rows its
    effective entitlements come from) under a signed state root; None if unknown."""

    def read(tx: Transaction) -> tuple[bool, Sequence[ReadRow]]:
        license_row = tx.projection.row(account, "licenses", (serial,))
        if license_row is None:
            return False, ()
        rows: list[ReadRow] = [("licenses", (serial,), license_row)]
        key = (license_row["plan"], license_row["plan_version"])
        plan_row = tx.projection.row(account, "plan_versions", key)
        if plan_row is not None:
            rows.append(("plan_versions", key, plan_row))
        return True, rows

    found, proof = _with_proof(store, account, guard, sign, read)
    return proof if found else None


_T = TypeVar("_T")


def _with_proof(
    store: Store,
    account: str,
    guard: StateGuard,
    sign: Callable[[], object],
    read: Callable[[Transaction], tuple[_T, Sequence[ReadRow]]],
    known_size: int | None = None,
) -> tuple[_T, StateProof]:
    """``read`` a state whose head has a signed checkpoint, and the proof of the rows
    it read. When the head has none yet (or the writer has not published its map),
    ``sign()`` asks the ledger writer for one and it is read again. Raises
    ``StateUnverified`` when no proof can be made."""
    for _ in range(PROOF_ATTEMPTS):
        guard.require(account)
        with store.quick_read() as tx:
            head = tx.ledger.head(account)
            stored = tx.ledger.checkpoint(account)
            if head is not None and stored is not None and stored.size == head.size:
                result, rows = read(tx)
                proof = guard.proof(tx, account, head.size, stored.note, rows)
                if proof is not None:
                    if known_size is not None and known_size <= head.size:
                        hashes = consistency_proof(known_size, head.size, tx.ledger.nodes(account))
                        proof["consistency"] = ConsistencyProof(
                            {"from": known_size, "to": head.size, "proof": _b64_all(hashes)}
                        )
                    return result, cast(StateProof, proof)
        sign()
    guard.refuse(account, "no proof of the rows a check read could be made")


def _b64_all(hashes: Sequence[bytes]) -> list[str]:
    return [base64.b64encode(h).decode() for h in hashes]


PROOF_ATTEMPTS = 4
"""Reads of a check whose rows do not prove before the account is proven afresh."""


def _proven(
    store: Store,
    account: str,
    guard: StateGuard,
    decide_in: Callable[[Transaction], list[Decided]],
    transaction: Callable[[], AbstractContextManager[Transaction]],
) -> list[Decided]:
    """``decide_in`` a read transaction whose rows ``guard`` proves (docs/state.md):
    no answer is given from a row that does not hash into the proven state map.

    A read that saw a commit this process's writer has not yet published is read again
    once it has; one that saw another writer's signed head takes that head's map
    (``StateGuard.follow``); after ``PROOF_ATTEMPTS`` the account is proven afresh (an
    unsigned write of another process, or tampering), and ``StateUnverified`` if it
    still fails.
    """
    for attempt in range(PROOF_ATTEMPTS + 1):
        guard.require(account)
        with transaction() as tx:
            decided = decide_in(tx)
            if guard.proves(tx, account, [row for d in decided for row in d.read]):
                return decided
        if attempt == PROOF_ATTEMPTS - 1:
            guard.verify(store, account, None)
        elif not guard.follow(store, account):  # another writer's signed head, else
            guard.wait(0.02)  # this process's writer publishing its commit
    guard.refuse(account, "rows read by a check do not hash into the proven state map")


@dataclass(frozen=True, slots=True)
class LicenseHolder:
    """Who presented ``Authorization: License <key>``: one license of one account."""

    account: str
    serial: str
    key: str

    def may_check(self, license: str) -> bool:
        """True when ``license`` names this holder's own license (its serial or key)."""
        return license == self.serial or hmac.compare_digest(license.encode(), self.key.encode())


def require_own_license(holder: str | None, serial: str) -> None:
    """``Forbidden`` when a ``License`` credential for license ``holder`` (None: an
    API key, which acts on any license of its account) acts on license ``serial``."""
    if holder is not None and holder != serial:
        raise Forbidden("a License credential may act only on its own license")


def authenticate_license(store: Store, key: str) -> LicenseHolder:
    """The holder of license ``key``; raises ``Unauthenticated`` for an unknown key.

    A revoked or suspended license still authenticates: its checks answer why not.
    A license imported from another system also authenticates with its legacy key.
    """
    with store.quick_read() as tx:
        holder = tx.licenses.holder_by_key(hash_license_key(key))
        if holder is None and not is_tenure_key(key):
            legacy = tx.licenses.holders_by_legacy_key(hash_legacy_key(key))
            # The same legacy key imported into two accounts names no one license.
            holder = legacy[0] if len(legacy) == 1 else None
    if holder is None:
        raise Unauthenticated("invalid license key")
    return LicenseHolder(holder[0], holder[1], key)
