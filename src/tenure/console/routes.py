"""The console's HTTP side: sign-in, the session, pages and license actions.

Every page authenticates the sealed API key of its session again (a revoked key
stops working at once) and checks the role with ``tenure.service.policy.allowed``, the
same policy the API applies. Every form POST carries the session's CSRF token.
License actions call the same use cases as the API routes
(``tenure.service.handlers.licensing``), so the ledger writer audits them exactly
like API calls; refusals by role are audited here.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from tenure.console import views, web
from tenure.console.session import COOKIE, MAX_AGE_SECONDS, SIGNIN_COOKIE
from tenure.domain.commands import ReinstateLicense, RevokeLicense, SuspendLicense
from tenure.domain.timefmt import format_time
from tenure.errors import NotFound, TenureError, Unauthenticated
from tenure.ops import alerts, notices, reconcile
from tenure.service import approvals, licensing
from tenure.service.apikeys import Principal, authenticate
from tenure.service.audit import caller_entry
from tenure.service.handlers import Submit
from tenure.service.handlers import approvals as approval_cases
from tenure.service.handlers import licensing as cases
from tenure.service.licensing import License, LicenseList
from tenure.service.views import ApprovalPending
from tenure.store.unit import Store

HERE = Path(__file__).parent
MAX_REASON = 500
ACTIONS: dict[str, tuple[str, str]] = {
    "suspend": ("license.suspend", SuspendLicense.name),
    "reinstate": ("license.reinstate", ReinstateLicense.name),
    "revoke": ("license.change", RevokeLicense.name),
}
"""Console action → the role-policy action (as its API route) and the command's name
(the action of its audit entry)."""
_CHANGES: dict[str, Callable[[Submit, Store, Principal, str, str], License]] = {
    "suspend": cases.suspend_license,
    "reinstate": cases.reinstate_license,
}
"""The console actions that are never gated → their use case (revoking may be:
``tenure.service.handlers.licensing.revoke_license``)."""

router = APIRouter(prefix="/console", include_in_schema=False)


def install(
    app: FastAPI, failures: web.FailureLimiter, status_of: Callable[[TenureError], int]
) -> None:
    """Add the console to ``app``: its routes under ``/console``, its static files
    under ``/console/static`` and the handlers that turn refusals into pages.
    ``failures`` limits failed sign-ins per client address; ``status_of`` is the
    HTTP status of an error, the API's (the composition root gives both)."""
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.filters["when"] = views.short_time
    templates.env.filters["day"] = views.short_day
    app.state.console = web.Console(templates, failures, status_of)
    app.mount("/console/static", StaticFiles(directory=HERE / "static"), name="console-static")
    app.include_router(router)
    app.add_exception_handler(web.ConsolePage, web.error_page)
    app.add_exception_handler(web.SignInRequired, web.to_sign_in)


# ---------------------------------------------------------------- sign-in and out


@router.get("", response_model=None)
@router.get("/", response_model=None)
def home(request: Request) -> Response:
    session = web.session_of(request)
    return RedirectResponse(_landing(session), status_code=303)


def _landing(session: web.Session) -> str:
    pages = web.nav(session)
    return f"/console/{pages[0]['path']}" if pages else "/console/signin"


@router.get("/signin", response_model=None)
def signin_form(request: Request) -> Response:
    return web.signin_page(request)


@router.post("/signin", response_model=None)
async def signin(request: Request) -> Response:
    """Exchange an API key for a session cookie; 401 page for a wrong key, 403 for a
    form sent from another origin or without the token of the browser's own form."""
    console, runtime = web.console_of(request), web.runtime_of(request)
    ip = web.client_ip(request)
    if console.failures.wait(ip) > 0:
        return web.signin_page(request, 429, "Too many failed sign-ins: wait a minute.")
    fields = await web.form_fields(request, None)
    if not web.signin_allowed(request, fields):
        return web.signin_page(request, 403, "The sign-in form expired: sign in again.")
    key = fields.get("api_key", "").strip()
    try:
        principal = await run_in_threadpool(authenticate, runtime.store, key)
    except Unauthenticated:
        console.failures.take(ip)
        return web.signin_page(request, 401, "That API key is not valid.")
    value = console.session_sealer(runtime).seal(key)
    session = web.Session(principal, value, "")
    response = RedirectResponse(_landing(session), status_code=303)
    response.delete_cookie(SIGNIN_COOKIE, path="/console", httponly=True, samesite="strict")
    web.set_cookie(response, request, COOKIE, value, MAX_AGE_SECONDS)
    return response


@router.post("/signout", response_model=None)
async def signout(request: Request) -> Response:
    session = web.session_of(request)
    await web.form_fields(request, session)
    response = RedirectResponse("/console/signin", status_code=303)
    response.delete_cookie(
        COOKIE,
        path="/console",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    return response


# ---------------------------------------------------------------- pages


def _now() -> datetime:
    return datetime.now(UTC)


@router.get("/overview", response_model=None)
def overview(request: Request) -> Response:
    session = web.session_allowed(request, "ops.read")
    runtime, account, now = web.runtime_of(request), session.principal.account, _now()
    store = runtime.store
    panels: dict[str, Any] = {"ledger": views.ledger_status(store, account, now)}
    if session.may("license.read"):
        panels["licenses"] = views.license_counts(store, account, now)
        panels["decisions"] = views.decision_counts(store, account, now)
    if session.may("durability.read"):
        sites = runtime.settings.site_urls()
        shipper = request.app.state.shipper
        panels["durability"] = views.durability_status(runtime, account, shipper, sites, now)
    if session.may("drift.read"):
        panels["drift"] = reconcile.drift_summary(store, account)
        panels["last_pass"] = reconcile.last_pass(store, account)
    panels["slo"] = views.slo_panel(runtime, account, now)
    if session.may("notice.read"):
        panels["notices"] = notices.list_notices(store, account, 5)
    if session.may("alert.read"):
        panels["alerts"] = alerts.list_alerts(store, account, 5)
    return web.render(request, "overview.html", page="overview", **panels)


@router.get("/licenses", response_model=None)
def licenses(
    request: Request,
    serial: str = "",
    customer: str = "",
    status: str = "",
    cursor: str = "",
) -> Response:
    session = web.session_allowed(request, "license.read")
    store, account = web.runtime_of(request).store, session.principal.account
    search = {"serial": serial.strip(), "customer": customer.strip(), "status": status}
    with web.as_page(request):
        if search["serial"]:
            try:
                found = [licensing.get_license(store, account, search["serial"])]
            except NotFound:
                found = []
            page: LicenseList = {"licenses": found, "next_cursor": None}
        else:
            page = licensing.list_licenses(
                store,
                account,
                customer=search["customer"] or None,
                status=status or None,
                cursor=cursor or None,
                limit=25,
            )
    next_link = None
    if page["next_cursor"]:
        next_link = "?" + urlencode({**search, "cursor": page["next_cursor"]})
    return web.render(
        request,
        "licenses.html",
        page="licenses",
        licenses=page["licenses"],
        search=search,
        statuses=licensing.STATUSES,
        next_link=next_link,
        paged=bool(cursor),
    )


@router.get("/licenses/{serial}", response_model=None)
def license_page(request: Request, serial: str, done: str = "", approval: str = "") -> Response:
    session = web.session_allowed(request, "license.read")
    runtime, account, now = web.runtime_of(request), session.principal.account, _now()
    with web.as_page(request):
        detail = views.license_detail(runtime, account, serial, now)
        history = views.license_history_with_proofs(runtime, account, serial)
        state = views.license_state_proof(runtime, request.app.state.ledger, account, serial)
    status = detail["license"]["status"]
    actions = {
        "suspend": session.may("license.suspend") and status in ("active", "in_grace", "expired"),
        "reinstate": session.may("license.reinstate") and status == "suspended",
        "revoke": session.may("license.change") and status != "revoked",
    }
    return web.render(
        request,
        "license.html",
        page="licenses",
        done=done if done in ACTIONS else "",
        approval=approval[:80],
        actions=actions,
        history=history,
        state=state,
        **detail,
    )


@router.post("/licenses/{serial}/{action}", response_model=None)
async def license_action(request: Request, serial: str, action: str) -> Response:
    """Suspend, reinstate or revoke with a reason, as the API routes do it."""
    session = web.session_of(request)
    if action not in ACTIONS:
        raise web.ConsolePage(404, f"There is no license action {action!r}.")
    needed, command_name = ACTIONS[action]
    if not session.may(needed):
        await _audit_refusal(request, session, command_name, serial)
        web.require(session, needed)
    fields = await web.form_fields(request, session)
    reason = fields.get("reason", "").strip()
    if not reason or len(reason) > MAX_REASON:
        raise web.ConsolePage(400, f"A reason (1 to {MAX_REASON} characters) is required.")
    caller, runtime = session.principal, web.runtime_of(request)
    submit = request.app.state.ledger.execute
    with web.as_page(request):
        if action == "revoke":
            done = await run_in_threadpool(
                cases.revoke_license, submit, runtime.store, runtime.settings, caller, serial,
                reason,
            )  # fmt: skip
            if isinstance(done, ApprovalPending):
                return _back_to(serial, approval=str(done.approval["approval"]))
        else:
            await run_in_threadpool(_CHANGES[action], submit, runtime.store, caller, serial, reason)
    return _back_to(serial, done=action)


def _back_to(serial: str, **query: str) -> Response:
    return RedirectResponse(f"/console/licenses/{serial}?{urlencode(query)}", status_code=303)


async def _audit_refusal(request: Request, session: web.Session, action: str, target: str) -> None:
    """A mutation refused by role is audited, as ``AuditMiddleware`` does for ``/v1``."""
    who = session.principal
    detail = {"status": 403, "via": "console"}
    entry = caller_entry(who, action, "denied", "forbidden", target[:80], detail)
    await request.app.state.audit.record([entry])


@router.get("/customers", response_model=None)
def customers(request: Request, q: str = "", after: str = "") -> Response:
    session = web.session_allowed(request, "customer.read")
    runtime = web.runtime_of(request)
    with web.as_page(request):
        rows, more = views.customers_page(
            runtime, session.principal.account, after or None, q.strip()
        )
    next_link = "?" + urlencode({"q": q, "after": more}) if more else None
    return web.render(
        request, "customers.html", page="customers", customers=rows, q=q, next_link=next_link
    )


@router.get("/catalog", response_model=None)
def catalog(request: Request) -> Response:
    session = web.session_allowed(request, "product.read")
    products = views.catalog(web.runtime_of(request).store, session.principal.account)
    return web.render(request, "catalog.html", page="catalog", products=products)


@router.get("/approvals", response_model=None)
def approvals_page(request: Request, status: str = "") -> Response:
    session = web.session_allowed(request, "approval.read")
    store, caller = web.runtime_of(request).store, session.principal
    with web.as_page(request):
        found = approval_cases.list_approvals(store, caller, format_time(_now()), status or None)
    return web.render(
        request,
        "approvals.html",
        page="approvals",
        approvals=found.approvals,
        status=status,
        statuses=sorted(approvals.STATUSES),
    )


@router.get("/drift", response_model=None)
def drift(request: Request, kind: str = "") -> Response:
    session = web.session_allowed(request, "drift.read")
    store, account = web.runtime_of(request).store, session.principal.account
    with web.as_page(request):
        found = reconcile.drift_list(store, account, kind or None, 100)
    return web.render(
        request,
        "drift.html",
        page="drift",
        summary=found.summary,
        rows=found.findings,
        kind=kind,
        last_pass=found.last_pass,
    )


@router.get("/notices", response_model=None)
def notices_page(request: Request) -> Response:
    session = web.session_allowed(request, "notice.read")
    store, account = web.runtime_of(request).store, session.principal.account
    found = notices.list_notices(store, account, 50)
    raised = alerts.list_alerts(store, account, 50) if session.may("alert.read") else []
    return web.render(request, "notices.html", page="notices", notices=found, alerts=raised)


@router.get("/audit", response_model=None)
def audit_page(request: Request) -> Response:
    session = web.session_allowed(request, "audit.read")
    entries = views.audit_entries(web.runtime_of(request).store, session.principal.account)
    return web.render(request, "audit.html", page="audit", entries=entries)
