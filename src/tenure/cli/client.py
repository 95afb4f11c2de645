"""A small HTTP client for the commands that administer a running service.

Built from ``--url`` (env ``TENURE_URL``, default http://127.0.0.1:8080) and
``--api-key`` (env ``TENURE_API_KEY``; else ``<TENURE_DATA_DIR or ./var>/bootstrap-owner.key``
when that file exists). An https service is trusted by ``TENURE_CA_CERT`` (a PEM file:
its self-signed certificate or its CA) when set, else as httpx trusts: ``SSL_CERT_FILE``
or ``SSL_CERT_DIR`` when set, else the certifi bundle. An RFC 9457 problem answer
becomes an ``ApiError`` whose message is one line,
``"<status> <type-code>: <detail> (field: x)"``; a connection failure becomes
``Unreachable``. Both are ``TenureError``\\ s, so ``run()`` prints one line and exits
non-zero. Only httpx is imported here: no web-server stack.
"""

from __future__ import annotations

import json as jsonlib
import os
import ssl
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Column, Table

from tenure import __version__
from tenure.cli.common import Output, gather_options, out
from tenure.errors import TenureError
from tenure.service.apikeys import BOOTSTRAP_FILE

DEFAULT_URL = "http://127.0.0.1:8080"
TIMEOUT = 10.0

UrlOption = Annotated[
    str | None, typer.Option("--url", help=f"Service URL (env TENURE_URL; default {DEFAULT_URL}).")
]
ApiKeyOption = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        help="API key (env TENURE_API_KEY; default: <TENURE_DATA_DIR or ./var>/"
        "bootstrap-owner.key if it exists).",
    ),
]
LicenseKeyOption = Annotated[
    str | None,
    typer.Option(
        "--license-key",
        help="Authenticate as the application with this license key "
        "(Authorization: License KEY) instead of an API key; acts on that license only.",
    ),
]
IdempotencyKeyOption = Annotated[
    str | None,
    typer.Option(
        "--idempotency-key",
        help="Idempotency-Key header: a retry with the same key and body appends nothing.",
    ),
]


class RemoteError(TenureError):
    """A failure talking to the service."""

    code = "remote_error"


class Unreachable(RemoteError):
    """The service could not be reached (connection refused, DNS, timeout, bad URL)."""

    code = "unreachable"


class NoApiKey(RemoteError):
    """No API key was given and no bootstrap key file was found."""

    code = "no_api_key"


class ApiError(RemoteError):
    """The service answered with an error (normally an RFC 9457 problem)."""

    code = "api_error"

    def __init__(self, status: int, type_code: str, detail: str, field: str | None) -> None:
        message = f"{status} {type_code}: {detail}"
        if field:
            message += f" (field: {field})"
        super().__init__(_one_line(message), field=field)
        self.status = status
        self.type_code = type_code
        self.detail = detail
        self.field = field


def _one_line(text: str) -> str:
    return " ".join(text.split())


CA_CERT_ENV = "TENURE_CA_CERT"


def service_trust() -> ssl.SSLContext | bool:
    """What an https service's certificate must verify against: the PEM file named by
    ``TENURE_CA_CERT``, else httpx's default (``True``). Raises ``RemoteError`` for a
    file that cannot be read or holds no certificate."""
    path = os.environ.get(CA_CERT_ENV)
    if not path:
        return True
    try:
        return ssl.create_default_context(cafile=path)
    except (OSError, ssl.SSLError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise RemoteError(_one_line(f"{CA_CERT_ENV}={path}: {reason}")) from None


def unreachable(what: str, exc: Exception) -> Unreachable:
    """``Unreachable`` for a transport failure reaching ``what``; an https certificate
    that does not verify says how to trust it."""
    reason = str(exc) or type(exc).__name__
    if "CERTIFICATE_VERIFY_FAILED" in reason:
        reason += f" (trust it: {CA_CERT_ENV}=<its PEM file>, or SSL_CERT_FILE)"
    return Unreachable(_one_line(f"cannot reach {what}: {reason}"))


def resolve_url(url: str | None) -> str:
    chosen = url or os.environ.get("TENURE_URL") or DEFAULT_URL
    return chosen.rstrip("/")


def resolve_api_key(api_key: str | None) -> str | None:
    """``--api-key``, else ``TENURE_API_KEY``, else the bootstrap key file if present."""
    if api_key:
        return api_key.strip()
    env = os.environ.get("TENURE_API_KEY")
    if env:
        return env.strip()
    data_dir = Path(os.environ.get("TENURE_DATA_DIR") or "var")
    key_file = data_dir / BOOTSTRAP_FILE
    try:
        text = key_file.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return text or None


def error_of(response: httpx.Response) -> ApiError:
    """The ``ApiError`` for a 4xx/5xx answer, problem+json or not."""
    status = response.status_code
    body: Any = None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and ("type" in body or "detail" in body):
        type_code = str(body.get("type") or "").rstrip("/").rsplit("/", 1)[-1] or "error"
        detail = str(body.get("detail") or body.get("title") or response.reason_phrase)
        field = body.get("field")
        return ApiError(status, type_code, detail, str(field) if field else None)
    text = response.text.strip().splitlines()
    detail = text[0][:200] if text else response.reason_phrase
    code = response.reason_phrase.lower().replace(" ", "_") or "error"
    return ApiError(status, code, detail, None)


class Remote:
    """One service, one credential. ``license_key`` switches to ``License`` auth."""

    def __init__(
        self,
        url: str | None,
        api_key: str | None,
        *,
        license_key: str | None = None,
        require_key: bool = True,
    ) -> None:
        self.url = resolve_url(url)
        headers = {"User-Agent": f"tenure-cli/{__version__}", "Accept": "application/json"}
        if license_key is not None:
            headers["Authorization"] = f"License {license_key}"
        else:
            key = resolve_api_key(api_key)
            if key:
                headers["Authorization"] = f"Bearer {key}"
            elif require_key:
                raise NoApiKey(
                    "no API key: pass --api-key, set TENURE_API_KEY, or run where "
                    f"<TENURE_DATA_DIR or ./var>/{BOOTSTRAP_FILE} exists"
                )
        self._headers = headers

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Send one request; raise ``ApiError`` for an error answer, ``Unreachable`` if none."""
        all_headers = {**self._headers, **(headers or {})}
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        trust = service_trust()
        try:
            with httpx.Client(
                base_url=self.url, timeout=TIMEOUT, headers=all_headers, verify=trust
            ) as client:
                response = client.request(method, path, json=json, params=clean, content=content)
        except httpx.TimeoutException as exc:
            raise Unreachable(
                _one_line(f"cannot reach {self.url}: timed out after {TIMEOUT:g} s ({exc})")
            ) from None
        except (httpx.TransportError, httpx.InvalidURL) as exc:
            raise unreachable(self.url, exc) from None
        if response.status_code >= 400:
            raise error_of(response)
        return response

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return _json(self.request("GET", path, params=params))

    def post(
        self, path: str, body: Any = None, *, idempotency_key: str | None = None
    ) -> tuple[int, Any]:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        response = self.request(
            "POST", path, json=body if body is not None else {}, headers=headers
        )
        return response.status_code, _json(response)

    def delete(self, path: str) -> Any:
        return _json(self.request("DELETE", path))


@dataclass(frozen=True)
class Endpoint:
    """The service a command talks to and its credential: ``--url``, ``--api-key`` and
    (for the commands an application may run) ``--license-key`` as given (``None`` for
    one not given)."""

    url: str | None = None
    api_key: str | None = None
    license_key: str | None = None

    def remote(self) -> Remote:
        """A client for the service; raises ``NoApiKey`` as ``Remote`` does."""
        return Remote(self.url, self.api_key, license_key=self.license_key)


def endpoint_options(command: Callable[..., None]) -> Callable[..., None]:
    """``command`` with its ``endpoint: Endpoint`` parameter given on the command line
    as ``--url`` and ``--api-key`` (``gather_options``)."""
    options = {"url": UrlOption, "api_key": ApiKeyOption}
    return gather_options(command, "endpoint", options, Endpoint)


def license_endpoint_options(command: Callable[..., None]) -> Callable[..., None]:
    """``endpoint_options`` with ``--license-key`` before the two: the application may
    run the command with its license key instead of an API key."""
    options = {"license_key": LicenseKeyOption, "url": UrlOption, "api_key": ApiKeyOption}
    return gather_options(command, "endpoint", options, Endpoint)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise RemoteError(
            _one_line(f"{response.status_code}: the service answered something that is not JSON")
        ) from None


def emit_json(data: Any) -> None:
    """One JSON document on stdout (``--output json``)."""
    sys.stdout.write(jsonlib.dumps(data, sort_keys=True) + "\n")


def emit_answer(answer: Any, output: Output, lines: Callable[[], Sequence[str]]) -> None:
    """The service's answer: as it came with ``--output json``, else the ``lines()`` made
    of it, printed as they are (no markup, no highlighting). ``lines`` is called only
    for text, so JSON output never depends on the fields the text reads."""
    if output is Output.json:
        emit_json(answer)
        return
    out.print("\n".join(lines()), highlight=False, markup=False)


PIPE_WIDTH = 200
"""Tables written to a pipe or file are not squeezed into 80 columns."""


def emit_listing(
    listing: dict[str, Any],
    key: str,
    json: bool,
    columns: Sequence[str | Column],
    row: Callable[[dict[str, Any]], Sequence[str]],
    footer: Callable[[list[dict[str, Any]]], str] | None = None,
) -> None:
    """A listing answered by the service: the whole document with ``json``, else a
    table of ``columns`` with one ``row(item)`` per item of ``listing[key]``, then the
    line ``footer(items)`` if given."""
    if json:
        emit_json(listing)
        return
    items: list[dict[str, Any]] = listing.get(key, [])
    table = Table(*columns)
    for item in items:
        table.add_row(*row(item))
    print_table(table)
    if footer is not None:
        out.print(footer(items), highlight=False, markup=False)


def unwrapped(*names: str) -> list[Column]:
    """Table columns whose cells never wrap (ids, times)."""
    return [Column(name, no_wrap=True) for name in names]


def print_table(table: Table) -> None:
    """A Rich table on stdout; as wide as its content (up to ``PIPE_WIDTH``) off a terminal."""
    if out.is_terminal:
        out.print(table)
    else:
        Console(width=PIPE_WIDTH, soft_wrap=True).print(table)
