"""Authentication: ``Authorization: Bearer <api key>`` → ``Principal``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from tenure.api.auditing import set_principal
from tenure.errors import Unauthenticated
from tenure.service.apikeys import Principal, authenticate

SECURITY_SCHEMES: dict[str, Any] = {
    "apiKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key: `Authorization: Bearer <api key>`",
    },
    "licenseKey": {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "A license key, for checks of that license only: "
        "`Authorization: License <license key>`",
    },
}
"""The OpenAPI security schemes; every ``/v1`` operation takes an API key."""
API_KEY: dict[str, Any] = {"security": [{"apiKey": []}]}
API_KEY_OR_LICENSE: dict[str, Any] = {"security": [{"apiKey": []}, {"licenseKey": []}]}
"""``openapi_extra`` of the operations that also take a License credential."""


def principal(request: Request) -> Principal:
    """The caller's principal; raises ``Unauthenticated`` (401) without a valid key."""
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthenticated("send Authorization: Bearer <api key>")
    caller = authenticate(request.app.state.runtime.engine, key.strip())
    set_principal(request, caller)
    return caller


Caller = Annotated[Principal, Depends(principal)]
