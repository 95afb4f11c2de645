"""Authentication: ``Authorization: Bearer <api key>`` → ``Principal``, and for the
application-side routes also ``Authorization: License <license key>``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from tenure.api.auditing import set_principal
from tenure.errors import Forbidden, Unauthenticated
from tenure.service.apikeys import Principal, authenticate
from tenure.service.checks import LicenseHolder, authenticate_license, require_own_license
from tenure.service.policy import POLICY, authorize
from tenure.service.read_model import CheckReadModel

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
    caller = authenticate(request.app.state.runtime.store, key.strip())
    return _accept(request, caller)


def _accept(request: Request, caller: Principal) -> Principal:
    set_principal(request, caller)
    _require_agent_certificate(request, caller)
    return caller


def client_certificate_name(request: Request) -> str | None:
    """The subject (RFC 4514) of the client certificate the TLS connection presented
    and that verified against the client CA, from the ASGI TLS extension that
    ``tenure serve`` adds (``tenure.cli.serve``); ``None`` without one."""
    tls = request.scope.get("extensions", {}).get("tls") or {}
    if not tls.get("client_cert_chain") or tls.get("client_cert_error"):
        return None
    name = tls.get("client_cert_name")
    return str(name) if name is not None else ""


def _require_agent_certificate(request: Request, caller: Principal) -> None:
    """With a client CA configured (mutual TLS), an ``agent`` key alone is not enough:
    raise ``Forbidden`` unless the connection also presented a verified client
    certificate. Other roles and ``License`` credentials need none."""
    if caller.role != "agent" or request.app.state.runtime.settings.tls_client_ca is None:
        return
    if client_certificate_name(request) is None:
        raise Forbidden("an agent key needs a client certificate from the configured CA")


Caller = Annotated[Principal, Depends(principal)]


@dataclass(frozen=True)
class CheckCaller:
    """Who calls an application-side route, and, for ``License`` auth, the one
    license it may see."""

    principal: Principal
    holder: LicenseHolder | None = None

    @property
    def account(self) -> str:
        return self.principal.account

    @property
    def holder_serial(self) -> str | None:
        """The one license a ``License`` credential acts on; None for an API key."""
        return self.holder.serial if self.holder is not None else None

    def require_may_check(self, license: str, field: str) -> None:
        """Raise ``Forbidden`` when a license holder asks about another license."""
        if self.holder is not None and not self.holder.may_check(license):
            raise Forbidden("a License credential may check only its own license", field=field)

    def require_serial(self, serial: str) -> None:
        """Raise ``Forbidden`` when a license holder acts on another license."""
        require_own_license(self.holder_serial, serial)


def key_or_license(action: str) -> Callable[[Request], Awaitable[CheckCaller]]:
    """A dependency: ``Bearer <api key>`` whose role may perform ``action``, or
    ``License <license key>``; else 401 (403 for a role that may not).

    Async, so that its one indexed read runs on the event loop (see
    ``tenure.api.check_routes``)."""

    async def dependency(request: Request) -> CheckCaller:
        return check_caller(request, action)

    dependency.__name__ = f"key_or_license_{action.replace('.', '_')}"
    return dependency


def check_caller(request: Request, action: str) -> CheckCaller:
    """What ``key_or_license(action)`` resolves to."""
    store = request.app.state.runtime.store
    caller, _ = _check_caller(
        request,
        action,
        lambda key: (authenticate_license(store, key), 0),
        lambda key: (authenticate(store, key), 0),
    )
    return caller


def cached_check_caller(
    request: Request, action: str, model: CheckReadModel
) -> tuple[CheckCaller, int]:
    """``check_caller``, the credential looked up in ``model`` first, and the read
    generation of the caller's account, read before any row this request reads."""
    return _check_caller(request, action, model.holder, model.principal)


def _check_caller(
    request: Request,
    action: str,
    holder_of: Callable[[str], tuple[LicenseHolder, int]],
    principal_of: Callable[[str], tuple[Principal, int]],
) -> tuple[CheckCaller, int]:
    scheme, _, credential = request.headers.get("authorization", "").partition(" ")
    credential = credential.strip()
    if scheme.lower() == "license" and credential:
        holder, generation = holder_of(credential)
        return _holding(request, holder), generation
    if scheme.lower() == "bearer" and credential:
        found, generation = principal_of(credential)
        caller = _accept(request, found)
        authorize(caller, action)
        return CheckCaller(caller), generation
    raise Unauthenticated("send Authorization: Bearer <api key> or License <license key>")


def _holding(request: Request, holder: LicenseHolder) -> CheckCaller:
    who = Principal(f"license:{holder.serial}", holder.account, "license", "license")
    set_principal(request, who)
    return CheckCaller(who, holder)


def require(action: str) -> Callable[[Principal], Principal]:
    """A FastAPI dependency: the caller's principal if its role may perform ``action``.

    Use as ``caller: Annotated[Principal, Depends(require("license.read"))]``.
    """
    if action not in POLICY:
        raise KeyError(f"unknown action {action!r}: add it to tenure.service.policy.POLICY")

    def dependency(caller: Caller) -> Principal:
        authorize(caller, action)
        return caller

    dependency.__name__ = f"require_{action.replace('.', '_')}"
    return dependency
