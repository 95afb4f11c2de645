"""Sign-in CSRF (docs/console.md, "Session security"): ``POST /console/signin`` is
refused unless it comes from the console's own origin and carries the token of the
sign-in form, bound to the browser's pre-session cookie. Over real HTTP (httpx) and
in Debian's Chromium against a real ``tenure serve``."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from support.server import HOST, Server, running_server

from .chromium import launched_chromium

SESSION_COOKIE = "tenure_console"
SIGNIN_COOKIE = "tenure_signin"
HOSTILE_ORIGIN = "http://evil.example"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(
        tmp_path_factory.mktemp("signin-data"), tmp_path_factory.mktemp("signin-logs")
    ) as running:
        yield running


def signin_form(client: httpx.Client) -> str:
    """Open the sign-in page in ``client`` (which keeps its cookies); the form's token."""
    page = client.get("/console/signin")
    assert page.status_code == 200, page.text
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found is not None, page.text
    return found.group(1)


def browser_like(server: Server) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=10)


def sign_in(client: httpx.Client, key: str, token: str | None, **headers: str) -> httpx.Response:
    form = {"api_key": key} | ({"csrf": token} if token is not None else {})
    return client.post("/console/signin", data=form, headers=headers)


def assert_refused(answer: httpx.Response, client: httpx.Client) -> None:
    assert answer.status_code == 403, answer.text
    assert SESSION_COOKIE not in answer.cookies
    assert SESSION_COOKIE not in client.cookies


def test_the_signin_form_carries_a_token_of_a_pre_session_cookie(server: Server) -> None:
    with browser_like(server) as client:
        page = client.get("/console/signin")
        cookie = page.headers["set-cookie"]
        token = signin_form(client)
        assert cookie.startswith(f"{SIGNIN_COOKIE}=")
        for flag in ("HttpOnly", "SameSite=strict", "Path=/console"):
            assert flag.lower() in cookie.lower(), cookie
        signed_in = sign_in(client, server.owner_key(), token)
    assert signed_in.status_code == 303, signed_in.text
    assert signed_in.headers["location"] == "/console/overview"
    assert SESSION_COOKIE in signed_in.cookies


def test_a_same_origin_browser_signin_is_accepted(server: Server) -> None:
    with browser_like(server) as client:
        token = signin_form(client)
        signed_in = sign_in(
            client,
            server.owner_key(),
            token,
            Origin=server.url,
            **{"Sec-Fetch-Site": "same-origin"},
        )
    assert signed_in.status_code == 303, signed_in.text


def test_a_signin_without_the_token_is_refused(server: Server) -> None:
    with browser_like(server) as client:
        signin_form(client)  # the pre-session cookie, but no token posted
        assert_refused(sign_in(client, server.owner_key(), None), client)


def test_a_signin_with_a_wrong_token_is_refused(server: Server) -> None:
    with browser_like(server) as client:
        token = signin_form(client)
        assert_refused(sign_in(client, server.owner_key(), "0" * len(token)), client)


def test_a_signin_without_the_pre_session_cookie_is_refused(server: Server) -> None:
    with browser_like(server) as attacker:
        token = signin_form(attacker)
    with browser_like(server) as victim:  # never opened the form: no cookie
        assert_refused(sign_in(victim, server.owner_key(), token), victim)


def test_a_token_of_another_browser_is_refused(server: Server) -> None:
    with browser_like(server) as attacker, browser_like(server) as victim:
        token = signin_form(attacker)
        signin_form(victim)
        assert_refused(sign_in(victim, server.owner_key(), token), victim)


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": HOSTILE_ORIGIN},
        {"Origin": "null"},
        {"Origin": "http://[evil.example"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Sec-Fetch-Site": "cross-site", "Origin": HOSTILE_ORIGIN},
    ],
)
def test_a_cross_origin_signin_is_refused_even_with_a_valid_token(
    server: Server, headers: dict[str, str]
) -> None:
    with browser_like(server) as client:
        token = signin_form(client)
        assert_refused(sign_in(client, server.owner_key(), token, **headers), client)


def test_a_cross_origin_signout_is_refused(server: Server) -> None:
    with browser_like(server) as client:
        assert sign_in(client, server.owner_key(), signin_form(client)).status_code == 303
        page = client.get("/console/overview")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf is not None
        answer = client.post(
            "/console/signout", data={"csrf": csrf.group(1)}, headers={"Origin": HOSTILE_ORIGIN}
        )
        assert answer.status_code == 403, answer.text
        assert client.get("/console/overview").status_code == 200  # still signed in


# ---------------------------------------------------------------- in Chromium


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launched_chromium() as launched:
        yield launched


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    opened = browser.new_context()
    try:
        yield opened
    finally:
        opened.close()


def test_the_real_signin_form_works_in_chromium(server: Server, context: Any) -> None:
    page = context.new_page()
    page.goto(f"{server.url}/console/signin")
    assert page.locator("form input[name=csrf]").count() == 1
    page.fill("#api_key", server.owner_key())
    with page.expect_navigation() as navigation:
        page.click("button[type=submit]")
    assert navigation.value.status == 200
    assert page.url.endswith("/console/overview")
    assert page.locator("[data-role]").inner_text() == "owner"


@contextmanager
def attacker_site(host: str, html: str) -> Iterator[str]:
    """A page on another origin (``http://host:<port>/``) that serves ``html``."""

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    site = ThreadingHTTPServer((HOST, 0), Page)
    thread = threading.Thread(target=site.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{site.server_address[1]}/"
    finally:
        site.shutdown()
        site.server_close()


def auto_submitting_form(target: str, key: str, token: str) -> str:
    """The attacker's page: a sign-in form posting the attacker's key, sent on load."""
    return f"""<!doctype html><html><body>
<form id="f" method="post" action="{target}/console/signin">
<input name="api_key" value="{key}"><input name="csrf" value="{token}">
</form><script>document.getElementById("f").submit()</script></body></html>"""


@pytest.mark.parametrize(
    "attacker_host",
    [
        pytest.param(HOST, id="same-site-other-port"),
        pytest.param("localhost", id="cross-site"),
    ],
)
def test_a_cross_origin_form_cannot_sign_chromium_in(
    server: Server, context: Any, attacker_host: str
) -> None:
    with browser_like(server) as attacker:
        token = signin_form(attacker)  # a token the attacker could get for itself
    victim = context.new_page()
    victim.goto(f"{server.url}/console/signin")  # the victim holds a pre-session cookie
    html = auto_submitting_form(server.url, server.owner_key(), token)
    with attacker_site(attacker_host, html) as url:
        with victim.expect_response(
            lambda r: r.url.endswith("/console/signin") and r.request.method == "POST"
        ) as posted:
            victim.goto(url)
        assert posted.value.status == 403
    names = {cookie["name"] for cookie in context.cookies()}
    assert SESSION_COOKIE not in names, names
    victim.goto(f"{server.url}/console/overview")
    assert victim.url.endswith("/console/signin")  # not signed in
