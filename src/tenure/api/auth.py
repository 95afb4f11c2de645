"""Authentication: ``Authorization: Bearer <api key>`` → ``Principal``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from tenure.api.auditing import set_principal
from tenure.errors import Unauthenticated
from tenure.service.apikeys import Principal, authenticate


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
