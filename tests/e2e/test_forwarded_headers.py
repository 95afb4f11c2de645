"""Forwarded headers and the Host header (docs/hardening.md, "Behind a proxy"): a real
``tenure serve`` trusts ``X-Forwarded-For``/``-Proto`` only from the addresses in
``TENURE_FORWARDED_ALLOW_IPS`` (none by default), and never reflects the ``Host``
header into an answer: public URLs come from ``TENURE_PUBLIC_URL``."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from support.api import apply_example_catalog, issue_license
from support.cli import subprocess_env, tenure_executable
from support.remote import assert_one_line_error
from support.server import Server, running_server
from tenure.config import Settings

AUTH_FAILURES = 5
"""Failed authentications per minute per client address on these servers."""
HOSTILE = "evil.example"
PUBLIC_URL = "https://licenses.example.com"
WRONG_KEY = "tnr_" + "a" * 52


def serve(factory: pytest.TempPathFactory, name: str, **settings: str) -> Iterator[Server]:
    with running_server(
        factory.mktemp(f"{name}-data"), factory.mktemp(f"{name}-logs"), **settings
    ) as server:
        yield server


@pytest.fixture(scope="module")
def direct(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server reached directly: no proxy is trusted (the default)."""
    yield from serve(
        tmp_path_factory, "direct", TENURE_RATE_AUTH_FAILURES_PER_MINUTE=str(AUTH_FAILURES)
    )


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with the default settings: no proxy trusted, no public URL."""
    yield from serve(tmp_path_factory, "plain")


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server behind a proxy on 127.0.0.1, with its public URL set."""
    yield from serve(
        tmp_path_factory,
        "proxied",
        TENURE_RATE_AUTH_FAILURES_PER_MINUTE=str(AUTH_FAILURES),
        TENURE_FORWARDED_ALLOW_IPS="127.0.0.1",
        TENURE_PUBLIC_URL=PUBLIC_URL,
    )


def guess(server: Server, forwarded_for: str | None) -> int:
    """One request with a wrong API key; its status."""
    headers = {"Authorization": f"Bearer {WRONG_KEY}"}
    if forwarded_for is not None:
        headers["X-Forwarded-For"] = forwarded_for
    return httpx.get(f"{server.url}/v1/products", headers=headers, timeout=10).status_code


def test_rotating_x_forwarded_for_does_not_reset_the_failed_auth_limit(direct: Server) -> None:
    statuses = [guess(direct, f"198.51.100.{n}") for n in range(AUTH_FAILURES)]
    assert statuses == [401] * AUTH_FAILURES
    # The limit is on the TCP peer (127.0.0.1), whatever address the header claims.
    assert guess(direct, "198.51.100.200") == 429
    assert guess(direct, None) == 429


def test_forwarded_for_from_an_allowed_proxy_is_honoured(proxied: Server) -> None:
    statuses = [guess(proxied, "203.0.113.7") for _ in range(AUTH_FAILURES)]
    assert statuses == [401] * AUTH_FAILURES
    assert guess(proxied, "203.0.113.7") == 429
    # Another client behind the same proxy has a bucket of its own, and so has the
    # proxy's own address.
    assert guess(proxied, "203.0.113.8") == 401
    assert guess(proxied, None) == 401


def test_forwarded_proto_counts_only_from_an_allowed_proxy(direct: Server, proxied: Server) -> None:
    https = {"X-Forwarded-Proto": "https"}
    spoofed = httpx.get(f"{direct.url}/healthz", headers=https, timeout=10)
    assert "strict-transport-security" not in spoofed.headers
    forwarded = httpx.get(f"{proxied.url}/healthz", headers=https, timeout=10)
    assert "strict-transport-security" in forwarded.headers


def minted_token(server: Server, host: str | None = None) -> dict[str, object]:
    """``POST /v1/tokens`` for a newly activated device, sent with ``Host: host``."""
    headers = {"Host": host} if host else {}
    with server.client(server.owner_key()) as owner:
        apply_example_catalog(owner)
        license = issue_license(owner)
    app = {"Authorization": f"License {license['key']}", **headers}
    with httpx.Client(base_url=server.url, headers=app, timeout=10) as client:
        serial = license["serial"]
        activated = client.post(f"/v1/licenses/{serial}/activations", json={"fingerprint": "pc"})
        assert activated.status_code == 201, activated.text
        minted = client.post("/v1/tokens", json={"license": serial, "fingerprint": "pc"})
    assert minted.status_code == 201, minted.text
    answer: dict[str, object] = minted.json()
    return answer


def test_without_a_public_url_the_jwks_url_is_relative(plain: Server) -> None:
    minted = minted_token(plain, host=HOSTILE)
    assert minted["jwks_url"] == "/.well-known/jwks.json?account=default"


def test_with_a_public_url_the_jwks_url_is_built_from_it(proxied: Server) -> None:
    minted = minted_token(proxied, host=HOSTILE)
    assert minted["jwks_url"] == f"{PUBLIC_URL}/.well-known/jwks.json?account=default"


HOSTILE_PROBES = [
    ("GET", "/v1/licenses/"),  # a trailing slash: Starlette would redirect to Host
    ("GET", "/v1/products"),
    ("GET", "/no/such/page"),
    ("GET", "/console"),
    ("GET", "/console/"),
    ("GET", "/console/signin"),
    ("GET", "/console/overview"),
    ("GET", "/docs"),
    ("GET", "/redoc"),
    ("GET", "/openapi.json"),
    ("GET", "/.well-known/jwks.json"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("POST", "/v1/check"),
]


@pytest.mark.parametrize("host", [HOSTILE, f"{HOSTILE.upper()}:8443", f"[{HOSTILE}"])
@pytest.mark.parametrize(("method", "path"), HOSTILE_PROBES)
def test_a_hostile_host_header_never_appears_in_an_answer(
    plain: Server, method: str, path: str, host: str
) -> None:
    headers = {"Host": host, "Authorization": f"Bearer {plain.owner_key()}"}
    with httpx.Client(base_url=plain.url, headers=headers, timeout=10) as client:
        answer = client.request(method, path, json={} if method == "POST" else None)
    assert answer.status_code < 500, answer.text
    assert HOSTILE not in answer.text.lower()
    for name, value in answer.headers.items():
        assert HOSTILE not in value.lower(), (name, value)


@pytest.mark.parametrize("value", ["localhost", "10.0.0.0/33", "127.0.0.1, proxy"])
def test_a_proxy_list_that_is_not_addresses_is_refused_at_start(value: str) -> None:
    with pytest.raises(ValidationError, match="forwarded_allow_ips"):
        Settings(forwarded_allow_ips=value)


@pytest.mark.parametrize(
    "value", ["licenses.example.com", "ftp://x.example", "https://x.example/?a=1", "https://u@x"]
)
def test_a_public_url_that_is_not_a_base_url_is_refused_at_start(value: str) -> None:
    with pytest.raises(ValidationError, match="public_url"):
        Settings(public_url=value)


def test_public_urls_are_under_the_public_url_or_relative() -> None:
    assert Settings(public_url="https://x.example/t/").public("/a") == "https://x.example/t/a"
    assert Settings().public("/a") == "/a"
    assert Settings(forwarded_allow_ips=" 10.0.0.0/8, ::1 ").proxy_networks() == [
        "10.0.0.0/8",
        "::1",
    ]


def test_serve_refuses_a_proxy_list_that_is_not_addresses_in_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [tenure_executable(), "serve", "--data-dir", str(tmp_path / "data")],
        env=subprocess_env(TENURE_FORWARDED_ALLOW_IPS="127.0.0.1,proxy.internal"),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert_one_line_error(done, "TENURE_FORWARDED_ALLOW_IPS", "proxy.internal")
    assert not (tmp_path / "data").exists()
