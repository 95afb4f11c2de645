"""The bodies of ``POST /v1/check`` and ``POST /v1/check/batch``: the pydantic models
(their schemas are in the OpenAPI document, their errors name the field), and quick
readers for the plainly valid bodies every protected application sends, which skip
pydantic on the hot path (docs/benchmarks.md, "Checks at framework speed").

A quick reader accepts only bodies the model takes as they are — known fields,
strings of 1 to 200 printable ASCII characters, ``proof`` a boolean, ``known_size``
a non-negative integer — and returns None for anything else, which the model then
validates and, if it must, refuses naming the field. Property tests hold them to the
models (``tests/unit/test_quick_check_body.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field

from tenure.api.bodies import parse_body
from tenure.service.checks import MAX_BATCH, CheckItem

Short = Annotated[str, Field(min_length=1, max_length=200)]


KNOWN_SIZE = (
    "with proof: the size of a checkpoint you verified before; the proof then carries "
    "the consistency proof from it (docs/state.md)"
)


class QuestionBody(BaseModel):
    """One question: may ``license`` (serial or key) use ``entitlement`` now?"""

    model_config = ConfigDict(extra="forbid")

    license: Short
    entitlement: Short
    fingerprint: Short | None = None

    def item(self) -> CheckItem:
        return CheckItem(self.license, self.entitlement, self.fingerprint)


class CheckBody(QuestionBody):
    """One question, and whether to prove the answer (docs/state.md, "Proofs")."""

    proof: Annotated[
        bool,
        Field(description="add the rows read and their proof under a signed state root"),
    ] = False
    known_size: Annotated[int | None, Field(ge=0, description=KNOWN_SIZE)] = None


class BatchBody(BaseModel):
    """Up to ``MAX_BATCH`` questions, answered in order."""

    model_config = ConfigDict(extra="forbid")

    checks: Annotated[list[QuestionBody], Field(max_length=MAX_BATCH)]
    proof: Annotated[
        bool,
        Field(description="add every row read and its proof under one signed state root"),
    ] = False
    known_size: Annotated[int | None, Field(ge=0, description=KNOWN_SIZE)] = None


@dataclass(frozen=True, slots=True)
class Question:
    """A ``CheckBody`` read without pydantic (``quick_question``)."""

    license: str
    entitlement: str
    fingerprint: str | None = None
    proof: bool = False
    known_size: int | None = None

    def item(self) -> CheckItem:
        return CheckItem(self.license, self.entitlement, self.fingerprint)


_CHECK_FIELDS = frozenset(CheckBody.model_fields)
QUICK_BODY_BYTES = 4096
"""Bodies up to this size may be read by ``quick_question``; longer ones never are."""


def _plain(value: object) -> bool:
    """A string pydantic takes as is for a ``Short`` field and every backend stores:
    1 to 200 printable ASCII characters."""
    return type(value) is str and 0 < len(value) <= 200 and value.isascii() and value.isprintable()


def quick_question(raw: bytes) -> Question | None:
    """The question of a body that is plainly valid — a JSON object of known fields
    only, strings of 1 to 200 printable ASCII characters, ``proof`` a boolean,
    ``known_size`` a non-negative integer — read without pydantic; None for anything
    else, which ``parse_body`` then validates and, if it must, refuses naming the
    field. A property test holds it to ``CheckBody``."""
    data = _small_object(raw, QUICK_BODY_BYTES)
    if data is None or not data.keys() <= _CHECK_FIELDS or not _plain_question(data):
        return None
    proof, known_size = data.get("proof", False), data.get("known_size")
    if not _plain_proof(proof, known_size):
        return None
    license, entitlement = data["license"], data["entitlement"]
    return Question(license, entitlement, data.get("fingerprint"), proof, known_size)


@dataclass(frozen=True, slots=True)
class Questions:
    """A ``BatchBody`` read without pydantic (``quick_questions``)."""

    checks: list[Question]
    proof: bool = False
    known_size: int | None = None


_BATCH_FIELDS = frozenset(BatchBody.model_fields)
_QUESTION_FIELDS = frozenset(QuestionBody.model_fields)
QUICK_BATCH_BYTES = 256 * 1024
"""Batch bodies up to this size may be read by ``quick_questions``."""


def quick_questions(raw: bytes) -> Questions | None:
    """``quick_question`` for ``/v1/check/batch``: ``{"checks": [...]}`` of at most
    ``MAX_BATCH`` plainly valid questions (``proof`` and ``known_size`` as there);
    None for anything else, which ``BatchBody`` validates. A property test holds it to
    ``BatchBody``."""
    data = _small_object(raw, QUICK_BATCH_BYTES)
    if data is None or not data.keys() <= _BATCH_FIELDS:
        return None
    asked, proof, known_size = data.get("checks"), data.get("proof", False), data.get("known_size")
    if type(asked) is not list or len(asked) > MAX_BATCH or not _plain_proof(proof, known_size):
        return None
    questions = []
    for one in asked:
        if type(one) is not dict or not one.keys() <= _QUESTION_FIELDS or not _plain_question(one):
            return None
        questions.append(Question(one["license"], one["entitlement"], one.get("fingerprint")))
    return Questions(questions, proof, known_size)


def _small_object(raw: bytes, limit: int) -> dict[str, Any] | None:
    if len(raw) > limit:
        return None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return data if type(data) is dict else None


def _plain_question(data: dict[str, Any]) -> bool:
    fingerprint = data.get("fingerprint")
    return (
        _plain(data.get("license"))
        and _plain(data.get("entitlement"))
        and (fingerprint is None or _plain(fingerprint))
    )


def _plain_proof(proof: object, known_size: object) -> bool:
    return type(proof) is bool and (
        known_size is None or (type(known_size) is int and known_size >= 0)
    )


async def check_body(request: Request) -> CheckBody | Question:
    """The body of ``POST /v1/check``: quickly read, else validated by the model."""
    if _declared(request) <= QUICK_BODY_BYTES:
        quick = quick_question(await request.body())
        if quick is not None:
            return quick
    return await parse_body(request, CheckBody)  # reads the body kept by request.body()


async def batch_body(request: Request) -> BatchBody | Questions:
    """The body of ``POST /v1/check/batch``: quickly read, else validated by the model."""
    if _declared(request) <= QUICK_BATCH_BYTES:
        quick = quick_questions(await request.body())
        if quick is not None:
            return quick
    return await parse_body(request, BatchBody)


def _declared(request: Request) -> int:
    """The body's declared length (a chunked body, with none: past every quick limit)."""
    declared = request.headers.get("content-length", "")
    return int(declared) if declared.isdigit() else QUICK_BATCH_BYTES + 1
