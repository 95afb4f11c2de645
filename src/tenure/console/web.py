"""Plumbing of the console pages: the session of a request, role checks, rendering,
error pages and form parsing. Pages and actions live in ``tenure.console.routes``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from tenure.console.session import (
    COOKIE,
    SIGNIN_COOKIE,
    SessionSealer,
    is_signin_nonce,
    new_signin_nonce,
)
from tenure.crypto.keystore import load_master_key
from tenure.domain.storable import text_problem
from tenure.errors import TenureError, Unauthenticated
from tenure.service.apikeys import Principal, authenticate
from tenure.service.context import ServiceContext
from tenure.service.policy import allowed

NAV = (
    ("overview", "Overview", "ops.read"),
    ("licenses", "Licenses", "license.read"),
    ("customers", "Customers", "customer.read"),
    ("catalog", "Catalog", "product.read"),
    ("approvals", "Approvals", "approval.read"),
    ("drift", "Drift", "drift.read"),
    ("notices", "Notices & alerts", "notice.read"),
    ("audit", "Audit log", "audit.read"),
)
"""(path, title, the action the page needs); a role sees the entries it may open."""


class ConsolePage(Exception):
    """Answer with the error page: ``status`` and a message for a person."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class SignInRequired(Exception):
    """No session, an expired one, or a key that no longer authenticates."""


class FailureLimiter(Protocol):
    """Failed sign-ins per client address (``tenure.api.limits.TokenBuckets``)."""

    def take(self, key: str) -> float:
        """Count one failure of ``key``: 0.0 if allowed, else seconds to wait."""
        ...

    def wait(self, key: str) -> float:
        """Seconds until ``key`` may try again (0.0: now), counting nothing."""
        ...


@dataclass
class Console:
    """What the console keeps per app: templates, sign-in failure buckets, the HTTP
    status of an error (the API's mapping) and the session sealer (built on first
    use, once the runtime has the data dir)."""

    templates: Jinja2Templates
    failures: FailureLimiter
    status_of: Callable[[TenureError], int]
    sealer: SessionSealer | None = field(default=None)

    def session_sealer(self, runtime: ServiceContext) -> SessionSealer:
        if self.sealer is None:
            settings = runtime.settings
            secret = settings.master_key.get_secret_value() if settings.master_key else None
            self.sealer = SessionSealer.from_master(load_master_key(settings.data_dir, secret))
        return self.sealer


@dataclass(frozen=True)
class Session:
    """A signed-in browser: its principal, cookie value and CSRF token."""

    principal: Principal
    cookie: str
    csrf: str

    def may(self, action: str) -> bool:
        return allowed(self.principal.role, action)


def console_of(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


def runtime_of(request: Request) -> ServiceContext:
    runtime: ServiceContext = request.app.state.runtime
    return runtime


def session_of(request: Request) -> Session:
    """The signed-in session; raises ``SignInRequired`` without a valid one."""
    value = request.cookies.get(COOKIE)
    if not value:
        raise SignInRequired()
    runtime = runtime_of(request)
    sealer = console_of(request).session_sealer(runtime)
    key = sealer.open(value)
    if key is None:
        raise SignInRequired()
    try:
        principal = authenticate(runtime.store, key)
    except Unauthenticated:
        raise SignInRequired() from None
    session = Session(principal, value, sealer.csrf_token(value))
    request.state.console_session = session
    return session


def require(session: Session, action: str) -> None:
    if not session.may(action):
        raise ConsolePage(403, f"Your role ({session.principal.role}) may not do this ({action}).")


def session_allowed(request: Request, action: str) -> Session:
    """The signed-in session of a principal allowed ``action``; raises
    ``SignInRequired`` without a valid session, a 403 ``ConsolePage`` otherwise."""
    session = session_of(request)
    require(session, action)
    return session


@contextmanager
def as_page(request: Request) -> Iterator[None]:
    """Service errors become error pages with the status the API would answer."""
    try:
        yield
    except TenureError as exc:
        raise ConsolePage(console_of(request).status_of(exc), exc.message) from exc


def nav(session: Session | None) -> list[dict[str, str]]:
    if session is None:
        return []
    return [{"path": p, "title": t} for p, t, action in NAV if session.may(action)]


def render(request: Request, template: str, code: int = 200, **context: Any) -> HTMLResponse:
    session: Session | None = getattr(request.state, "console_session", None)
    response = console_of(request).templates.TemplateResponse(
        request,
        template,
        {"session": session, "nav": nav(session), "may": session.may if session else None}
        | context,
        status_code=code,
    )
    # Pages show personal data and license state: never from a cache.
    response.headers["Cache-Control"] = "no-store"
    return response


async def error_page(request: Request, exc: Exception) -> Response:
    """The page of a ``ConsolePage`` refusal, with its status."""
    if not isinstance(exc, ConsolePage):
        raise exc
    titles = {400: "Bad request", 401: "Not signed in", 403: "Forbidden", 404: "Not found"}
    title = titles.get(exc.status, "Conflict" if exc.status == 409 else "Something went wrong")
    return render(request, "error.html", exc.status, title=title, message=exc.message)


async def to_sign_in(request: Request, exc: Exception) -> Response:
    """Without a valid session: a page load goes to the sign-in page, a form POST is
    a 401 sign-in page (its action is not carried out). The dead cookie is cleared."""
    if request.method == "GET":
        response: Response = RedirectResponse("/console/signin", status_code=303)
    else:
        response = signin_page(request, 401, "Your session has ended: sign in again.")
    response.delete_cookie(COOKIE, path="/console", httponly=True, samesite="strict")
    return response


def signin_page(request: Request, code: int = 200, error: str | None = None) -> Response:
    """The sign-in page, its form carrying the token of the browser's pre-session
    cookie (set here when the browser has none)."""
    nonce = request.cookies.get(SIGNIN_COOKIE)
    if nonce is None or not is_signin_nonce(nonce):
        nonce = new_signin_nonce()
    sealer = console_of(request).session_sealer(runtime_of(request))
    response = render(request, "signin.html", code, error=error, csrf=sealer.signin_token(nonce))
    # Strict: a cross-site POST does not carry it, so its token cannot match.
    set_cookie(response, request, SIGNIN_COOKIE, nonce)
    return response


def set_cookie(
    response: Response, request: Request, name: str, value: str, max_age: int | None = None
) -> None:
    """Set a console cookie: ``HttpOnly``, ``SameSite=Strict``, ``Path=/console``,
    ``Secure`` when the request came over HTTPS."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/console",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )


def signin_allowed(request: Request, fields: dict[str, str]) -> bool:
    """Does a sign-in POST carry the token of the browser's pre-session cookie?"""
    sealer = console_of(request).session_sealer(runtime_of(request))
    return sealer.signin_valid(request.cookies.get(SIGNIN_COOKIE), fields.get("csrf", ""))


def cross_origin(request: Request) -> bool:
    """Did a browser send this POST from another origin? The rule of Go's
    ``http.CrossOriginProtection``: ``Sec-Fetch-Site`` decides when present (only
    ``same-origin`` and ``none`` pass: ``same-site`` is another origin, e.g. another
    port); else an ``Origin`` must name this host; a request with neither is no
    browser's cross-origin request. Behind a proxy that rewrites ``Host``, the host
    of ``TENURE_PUBLIC_URL`` is this host too."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site not in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None:
        return False
    hosts = {request.headers.get("host", "").lower()}
    public_url = runtime_of(request).settings.public_url
    if public_url:
        hosts.add(urlsplit(public_url).netloc.lower())
    try:
        return urlsplit(origin).netloc.lower() not in hosts - {""}
    except ValueError:  # not a URL (an unclosed "[" of an IPv6 host): no origin of ours
        return True


async def form_fields(request: Request, session: Session | None) -> dict[str, str]:
    """The posted form. Refuses (403) a POST from another origin and, with a
    session, a missing or wrong CSRF token; refuses (400) a field no backend can store
    as it is (a NUL character), as the API does (``tenure.domain.storable``)."""
    if cross_origin(request):
        raise ConsolePage(403, "The form was sent from another site.")
    form = await request.form()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    for name, value in fields.items():
        if (problem := text_problem(value)) is not None:
            raise ConsolePage(400, f"The field {name[:40]!r} {problem}.")
    if session is not None:
        sealer = console_of(request).session_sealer(runtime_of(request))
        if not sealer.csrf_valid(session.cookie, fields.get("csrf", "")):
            raise ConsolePage(403, "The form expired or did not come from this session.")
    return fields


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"
