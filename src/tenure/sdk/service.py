"""The licensing service's HTTP endpoints the SDK calls (docs/offline.md).

Each call authenticates with ``Authorization: License <key>`` and raises the
``SdkError`` subclass the caller names: ``problem`` is the RFC 9457 error code of a
refusal, ``unreachable`` for a transport failure and ``bad_response`` for an answer
the contract does not allow.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
import orjson

from tenure.sdk.errors import SdkError

PROBLEM_TYPE_BASE = "https://tenure.dev/problems/"


class Service:
    """One license's view of the service at ``url``."""

    def __init__(self, url: str, license_key: str, http: httpx.Client) -> None:
        self.url = url.rstrip("/")
        self._auth = {"Authorization": f"License {license_key}"}
        self._http = http

    def activate(self, serial: str, fingerprint: str, failure: type[SdkError]) -> dict[str, Any]:
        path = f"/v1/licenses/{quote(serial, safe='')}/activations"
        return self._json("POST", path, failure, body={"fingerprint": fingerprint})

    def mint(self, serial: str, fingerprint: str, failure: type[SdkError]) -> dict[str, Any]:
        body = {"license": serial, "fingerprint": fingerprint}
        return self._json("POST", "/v1/tokens", failure, body=body)

    def check(
        self, serial: str, entitlement: str, failure: type[SdkError], known_size: int | None
    ) -> dict[str, Any]:
        """``POST /v1/check`` with ``"proof": true`` (docs/state.md, "Proofs"), and the
        size of the checkpoint verified before, if any."""
        body: dict[str, Any] = {"license": serial, "entitlement": entitlement, "proof": True}
        if known_size is not None:
            body["known_size"] = known_size
        return self._json("POST", "/v1/check", failure, body=body)

    def refresh(self, token: str, failure: type[SdkError]) -> dict[str, Any]:
        return self._json("POST", "/v1/tokens/refresh", failure, body={"token": token})

    def jwks(self, account: str, failure: type[SdkError]) -> bytes:
        """The account's key set, as sent (it is parsed strictly by the caller)."""
        path = "/.well-known/jwks.json"
        return self._call("GET", path, failure, params={"account": account}).content

    def keyset(self, failure: type[SdkError]) -> bytes:
        """The account's key set note signed by its ledger key, as sent (the caller
        verifies it against the pinned ledger key)."""
        return self._call("GET", "/v1/keyset", failure).content

    def revocations(self, since: int, failure: type[SdkError]) -> str:
        """The signed revocation list from ledger seq ``since`` on, unverified."""
        response = self._call("GET", "/v1/revocations", failure, params={"since": since})
        return response.text.strip()

    def _json(
        self, method: str, path: str, failure: type[SdkError], *, body: dict[str, Any]
    ) -> dict[str, Any]:
        response = self._call(method, path, failure, body=body)
        try:
            answer = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            answer = None
        if not isinstance(answer, dict):
            raise failure(f"{path} did not answer a JSON object", problem="bad_response")
        return answer

    def _call(
        self,
        method: str,
        path: str,
        failure: type[SdkError],
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
    ) -> httpx.Response:
        try:
            response = self._http.request(
                method, self.url + path, json=body, params=params, headers=self._auth
            )
        except httpx.HTTPError as error:
            raise failure(f"{path}: {error!r}", problem="unreachable") from error
        if response.status_code >= 400:
            code, detail = _problem(response)
            raise failure(f"{path}: {detail}", problem=code, status=response.status_code)
        return response


def _problem(response: httpx.Response) -> tuple[str, str]:
    """The problem code and detail of an error answer (RFC 9457 or not)."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        body = None
    kind = body.get("type") if isinstance(body, dict) else None
    if isinstance(kind, str) and kind.startswith(PROBLEM_TYPE_BASE):
        detail = body.get("detail") if isinstance(body, dict) else None
        return kind.removeprefix(PROBLEM_TYPE_BASE), str(detail or kind)
    return f"http_{response.status_code}", f"HTTP {response.status_code}"
