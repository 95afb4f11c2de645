"""The ledger API (SPEC "Ledger API"): checkpoint, key, events, proofs.

Formats here are read by other programs (verifiers, SDKs): keep them exact.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse, Response

from tenure.api.auth import require
from tenure.api.problems import problem_responses
from tenure.api.runtime import runtime_of
from tenure.api.schemas import answers
from tenure.service import queries
from tenure.service.apikeys import Principal
from tenure.service.ledger import SignRequest

router = APIRouter(prefix="/v1/ledger", tags=["ledger"], responses=problem_responses(401, 403))
Reader = Annotated[Principal, Depends(require("ledger.read"))]
Signer = Annotated[Principal, Depends(require("ledger.sign"))]
NonNegative = Annotated[int, Query(ge=0, le=2**53 - 1)]


@router.get(
    "/checkpoint",
    response_class=PlainTextResponse,
    responses={200: {"description": "The signed note"}, **problem_responses(400, 404)},
)
def get_checkpoint(request: Request, caller: Reader, size: NonNegative | None = None) -> str:
    """The latest signed checkpoint (C2SP tlog-checkpoint), or the one of ``size``."""
    return queries.checkpoint_note(runtime_of(request).store, caller.account, size)


@router.post(
    "/checkpoint",
    response_class=PlainTextResponse,
    responses={200: {"description": "The signed note"}, **problem_responses(503)},
)
async def sign_checkpoint(request: Request, caller: Signer) -> str:
    """Sign a checkpoint of the current tree now (owner or admin)."""
    ledger = request.app.state.ledger
    await asyncio.wrap_future(ledger.submit(SignRequest(caller.account)))
    return queries.checkpoint_note(runtime_of(request).store, caller.account)


@router.get(
    "/key",
    response_class=PlainTextResponse,
    responses={200: {"description": "One key line per line"}, **problem_responses(404)},
)
def get_key(request: Request, caller: Reader) -> str:
    """The verifier key line(s) of this account's ledger (``name+hash+base64``)."""
    keys = queries.verifier_keys(runtime_of(request).store, caller.account)
    return "".join(line + "\n" for line in keys)


@router.get(
    "/events",
    response_model=None,
    responses={
        **answers(queries.EventsPageJson, "One page of events"),
        **problem_responses(400, 404),
    },
)
def get_events(
    request: Request,
    caller: Reader,
    start: NonNegative = 0,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_EVENTS_PAGE)] = 100,
) -> Response:
    """Events from ``start``: ``{"events": [{"seq", "leaf_b64", "event"}]}``."""
    page = queries.events_page(runtime_of(request).store, caller.account, start, limit)
    return Response(orjson.dumps(page.to_json()), media_type="application/json")


@router.get(
    "/proof/inclusion",
    response_model=None,
    responses={**answers(queries.InclusionProof, "The proof"), **problem_responses(400, 404)},
)
def get_inclusion(
    request: Request, caller: Reader, seq: NonNegative, size: NonNegative
) -> queries.InclusionProof:
    """RFC 9162 inclusion proof of event ``seq`` in the tree of ``size`` events."""
    return queries.inclusion(runtime_of(request).store, caller.account, seq, size)


@router.get(
    "/proof/consistency",
    response_model=None,
    responses={**answers(queries.ConsistencyProof, "The proof"), **problem_responses(400, 404)},
)
def get_consistency(
    request: Request,
    caller: Reader,
    from_: Annotated[int, Query(alias="from", ge=0, le=2**53 - 1)],
    to: NonNegative,
) -> queries.ConsistencyProof:
    """RFC 9162 consistency proof from tree size ``from`` to ``to``."""
    return queries.consistency(runtime_of(request).store, caller.account, from_, to)
