"""Offline tokens, their keys and revocations (docs/offline.md).

``POST /v1/tokens`` and ``/v1/tokens/refresh`` mint tokens for activated devices
(each mint is an audit entry, durable before the answer); ``GET
/.well-known/jwks.json`` publishes the keys that verify them, and ``GET /v1/keyset``
the same keys signed by the account's ledger key; ``GET /v1/revocations`` is the
signed list a client pulls when it reconnects; ``/v1/keys`` lists and rotates the
account's signing keys. The use cases are ``tenure.service.handlers.tokens``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from tenure.api.approval_routes import gated_route
from tenure.api.auditing import recorder_of, writer_of
from tenure.api.auth import API_KEY_OR_LICENSE, CheckCaller, key_or_license, require
from tenure.api.bodies import documented, parse_body
from tenure.api.problems import problem_responses
from tenure.api.schemas import answers
from tenure.crypto import jws
from tenure.domain.values import Serial, TokenId
from tenure.service.apikeys import Principal
from tenure.service.handlers import tokens as cases
from tenure.service.keyring import KeyList
from tenure.service.tokens import IssuedLicenseFile, MintedToken, RevokedToken

router = APIRouter(tags=["tokens"])
Minter = Annotated[CheckCaller, Depends(key_or_license("token.mint"))]
Reader = Annotated[CheckCaller, Depends(key_or_license("license.read"))]
LedgerReader = Annotated[CheckCaller, Depends(key_or_license("ledger.read"))]
KeyManager = Annotated[Principal, Depends(require("keys.manage"))]
Changer = Annotated[Principal, Depends(require("license.change"))]
Issuer = Annotated[Principal, Depends(require("license.issue"))]
MAX_BODY_BYTES = 16 * 1024


class TokenIn(BaseModel):
    """The device of an activation: the license serial and the device's fingerprint."""

    model_config = ConfigDict(extra="forbid")

    license: Serial
    fingerprint: Annotated[str, Field(min_length=1, max_length=256)]


class RefreshIn(BaseModel):
    """A token this service minted, expired or not."""

    model_config = ConfigDict(extra="forbid")

    token: Annotated[str, Field(min_length=1, max_length=16 * 1024)]


class RevokeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, Field(min_length=1, max_length=500)]


def _now() -> datetime:
    return datetime.now(UTC)


def _mint_route(body: type[BaseModel], minted: str) -> dict[str, Any]:
    """The route arguments of a mint: its body, 201 with the token (``minted`` says
    which), an API key or the license as credential."""
    return {
        "status_code": 201,
        "response_model": None,
        "responses": {
            **answers(MintedToken, minted, 201),
            **problem_responses(400, 401, 403, 404, 409, 503),
        },
        "openapi_extra": {**documented(body), **API_KEY_OR_LICENSE},
    }


@router.post("/v1/tokens", **_mint_route(TokenIn, "A token for the device"))
async def mint_token(request: Request, caller: Minter) -> JSONResponse:
    """Mint ``{"license", "fingerprint"}`` → 201 ``{"token", "expires_at", "jti",
    "account", "jwks_url"}``. A floating lease is renewed to outlast the token, so
    the seat stays held while the token works offline. 409 ``not_activated`` when
    the device holds no seat, ``license_inactive`` for a license that may not be
    used."""
    body = await parse_body(request, TokenIn, MAX_BODY_BYTES)
    caller.require_serial(body.license)
    minted = await run_in_threadpool(
        cases.mint_token, writer_of(request), recorder_of(request), request.app.state.tokens,
        request.app.state.runtime.settings, caller.principal, body.license, body.fingerprint,
    )  # fmt: skip
    return JSONResponse(minted, status_code=201)


@router.post("/v1/tokens/refresh", **_mint_route(RefreshIn, "The next token for the same device"))
async def refresh_token(request: Request, caller: Minter) -> JSONResponse:
    """``{"token"}`` (expired or not, signed by this account) → the next token for the
    same activation, renewing its lease as a heartbeat does. 400 ``token_rejected``
    for a token this account did not sign; 409 ``token_revoked`` for a token that was
    revoked or whose activation was deactivated, ``license_inactive`` for a license
    that is revoked, suspended or expired: a revoked token is never refreshed."""
    body = await parse_body(request, RefreshIn, MAX_BODY_BYTES)
    minted = await run_in_threadpool(
        cases.refresh_token, writer_of(request), recorder_of(request), request.app.state.tokens,
        request.app.state.runtime.settings, caller.principal, caller.holder_serial, body.token,
    )  # fmt: skip
    return JSONResponse(minted, status_code=201)


@router.get(
    "/.well-known/jwks.json",
    tags=["tokens"],
    response_model=None,
    responses={**answers(jws.KeySet, "The key set"), **problem_responses(400)},
)
def get_jwks(
    request: Request,
    account: Annotated[str, Query(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")] = "default",
) -> jws.KeySet:
    """The RFC 7517 key set that verifies the account's tokens, revocation lists and
    license files: the current key and retired keys whose tokens may still be valid.
    Public; an account without keys has an empty set."""
    keyring = request.app.state.runtime.keyring()
    return jws.jwks(keyring.published(account, _now()))


@router.get(
    "/v1/keyset",
    response_class=PlainTextResponse,
    responses={
        200: {"description": "The key set note (docs/offline.md, 'The signed key set')"},
        **problem_responses(401, 403, 404, 503),
    },
    openapi_extra=API_KEY_OR_LICENSE,
)
async def get_keyset(request: Request, caller: LedgerReader) -> PlainTextResponse:
    """The account's token keys (those of the JWKS, with the time each may sign for)
    as a C2SP signed note signed by the account's ledger key now, stating that time
    and the account's longest token lifetime: what an SDK given ``ledger_key``
    trusts. 404 only for an account whose ledger has no key yet."""
    note = await run_in_threadpool(
        cases.signed_keyset, request.app.state.ledger.execute, request.app.state.tokens,
        request.app.state.runtime.keystore, caller.principal,
    )  # fmt: skip
    return PlainTextResponse(note)


class JOSEResponse(Response):
    """A compact JWS as the body (RFC 7515 registers application/jose for it)."""

    media_type = "application/jose"


@router.get(
    "/v1/revocations",
    response_class=JOSEResponse,
    responses={
        200: {
            "description": "A JWS (typ tenure-revocations+jwt) of the revocations since `since`",
            "content": {"application/jose": {"schema": {"type": "string"}}},
        },
        **problem_responses(400, 401, 403),
    },
    openapi_extra=API_KEY_OR_LICENSE,
)
async def get_revocations(
    request: Request,
    caller: Reader,
    since: Annotated[int, Query(ge=0, le=2**53 - 1)] = 0,
) -> Response:
    """The signed list of revoked and suspended licenses, deactivated activations and
    revoked tokens from ledger seq ``since`` on; ask again with ``since=<until>``.
    A License credential sees its own license's entries only."""
    serial = caller.holder.serial if caller.holder is not None else None
    tokens = request.app.state.tokens
    signed = await run_in_threadpool(tokens.revocations, caller.account, since, serial, _now())
    return JOSEResponse(signed)


@router.post(
    "/v1/licenses/{serial}/tokens/{jti}/revoke",
    response_model=None,
    responses={
        **answers(RevokedToken, "The token is on the revocation list"),
        **problem_responses(400, 401, 403, 404, 503),
    },
    openapi_extra=documented(RevokeIn),
)
async def revoke_token(
    request: Request, caller: Changer, serial: Serial, jti: TokenId
) -> RevokedToken:
    """Put token ``jti`` of license ``serial`` on the revocation list ``{"reason"}``
    → ``{"serial", "jti", "revoked": true}`` (again: unchanged)."""
    body = await parse_body(request, RevokeIn, MAX_BODY_BYTES)
    return await run_in_threadpool(
        cases.revoke_token, writer_of(request), caller, serial, jti, body.reason
    )


@router.get(
    "/v1/keys",
    response_model=None,
    responses={**answers(KeyList, "The account's signing keys"), **problem_responses(401, 403)},
)
def list_keys(request: Request, caller: KeyManager) -> KeyList:
    """The account's token signing keys, newest first: ``{"keys": [{"kid",
    "public_key", "created_at", "retired_at", "publish_until"}]}``."""
    return {"keys": request.app.state.runtime.keyring().listing(caller.account)}


@router.post("/v1/keys/rotate", **gated_route(401, 403, 503))
async def rotate_keys(request: Request, caller: KeyManager) -> JSONResponse:
    """Ask to make a new signing key → 202 ``{"approval": {...}}``: rotation needs a
    second principal's approval (``POST /v1/approvals/{id}/approve``, see
    docs/approvals.md). Once approved, the old key stays published until every token
    it signed has expired; the approval's result is ``{"id", "kid", "created_at"}``."""
    settings = request.app.state.runtime.settings
    pending = await run_in_threadpool(cases.request_rotation, writer_of(request), settings, caller)
    return JSONResponse(pending.to_json(), status_code=202)


class LicenseFileIn(BaseModel):
    """The air-gapped device, the file's lifetime (ISO 8601, default: the rest of the
    license's term, at most a year for a perpetual license) and whether to encrypt it
    with a key derived from the license key."""

    model_config = ConfigDict(extra="forbid")

    fingerprint: Annotated[str, Field(min_length=1, max_length=256)]
    expires: Annotated[str, Field(min_length=2, max_length=32)] | None = None
    encrypt: bool = False


@router.post(
    "/v1/licenses/{serial}/license-file",
    status_code=201,
    response_model=None,
    responses={
        **answers(IssuedLicenseFile, "The armored license file", 201),
        **problem_responses(400, 401, 403, 404, 409, 503),
    },
    openapi_extra=documented(LicenseFileIn),
)
async def issue_license_file(request: Request, caller: Issuer, serial: Serial) -> JSONResponse:
    """Bind the device to the license (a node-locked activation, taking a seat) and
    answer 201 ``{"license_file", "expires_at", "jti", "activation", "encrypted"}``."""
    body = await parse_body(request, LicenseFileIn, MAX_BODY_BYTES)
    runtime = request.app.state.runtime
    issued = await run_in_threadpool(
        cases.issue_license_file, writer_of(request), recorder_of(request),
        request.app.state.tokens, runtime.license_keys, runtime.settings, caller, serial,
        body.fingerprint, body.expires, body.encrypt,
    )  # fmt: skip
    return JSONResponse(issued, status_code=201)
