"""``tenure serve``: the web stack, imported only when the service runs.

TLS is uvicorn's (``ssl_certfile``/``ssl_keyfile``). With a client CA, uvicorn asks
for a client certificate (``ssl.CERT_OPTIONAL``): a client may send none, but one it
sends must verify against that CA or the handshake fails.

Uvicorn does not tell the application about the peer certificate (its scopes carry
no ``tls`` extension), so ``serve`` runs uvicorn's own HTTP protocol with one
addition: once a TLS connection is made, the protocol reads the verified peer
certificate from the transport (``transport.get_extra_info("ssl_object")``) and
adds the ASGI TLS extension (``scope["extensions"]["tls"]``, with
``client_cert_chain`` and ``client_cert_name``) to every request of that
connection. ``tenure.api.auth`` reads it there.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import logging
import logging.config
import os
import shutil
import socket
import ssl
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import uvicorn
from cryptography import x509
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.supervisors import Multiprocess

from tenure.app.factory import create_app
from tenure.app.runtime import Runtime
from tenure.cli.common import out
from tenure.cli.local import settings
from tenure.config import Settings
from tenure.crypto.files import PRIVATE_DIR, PRIVATE_FILE, wider_than_private
from tenure.observability.logs import resolve_log_format, uvicorn_log_config
from tenure.observability.metrics import MULTIPROC_ENV
from tenure.service.apikeys import BOOTSTRAP_FILE, ensure_bootstrap_owner
from tenure.store.databases import sqlite_file

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _Fastest
except ImportError:  # pragma: no cover - httptools is optional for uvicorn
    _Fastest = H11Protocol  # type: ignore[misc, assignment]

_TLS_VERSIONS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}
APP_FACTORY = "tenure.app:app_from_env"
"""What each worker process imports when there are several."""
LISTEN_BACKLOG = 2048
"""uvicorn's default ``--backlog``."""
STARTUP_FAILURE = 3
"""uvicorn's exit status when the app did not start."""
MAX_MODE_WARNINGS = 100
"""File-mode warnings logged one per path at start; beyond it, one line counts the rest."""
_files_log = logging.getLogger("tenure.files")

ASGIApp = Callable[..., Any]


def tls_extension(ssl_object: ssl.SSLObject) -> dict[str, Any]:
    """The ASGI TLS extension of a connection: its verified client certificate (the
    leaf only: Python's ``ssl`` exposes no chain), or none."""
    der = ssl_object.getpeercert(binary_form=True)
    chain = [ssl.DER_cert_to_PEM_cert(der)] if der else []
    name = x509.load_der_x509_certificate(der).subject.rfc4514_string() if der else None
    return {
        "server_cert": None,
        "client_cert_chain": chain,
        "client_cert_name": name,
        "client_cert_error": None,
        "tls_version": _TLS_VERSIONS.get(ssl_object.version() or ""),
        "cipher_suite": None,
    }


def _with_tls(app: ASGIApp, extension: dict[str, Any]) -> ASGIApp:
    async def app_with_tls(scope: Any, receive: Any, send: Any) -> None:
        scope.setdefault("extensions", {})["tls"] = extension
        await app(scope, receive, send)

    return app_with_tls


class PeerCertificateProtocol(_Fastest):
    """Uvicorn's HTTP/1.1 protocol, adding the TLS extension to each request's scope."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # asyncio calls connection_made once the TLS handshake is done, so the peer
        # certificate (if any) is known and has been verified against the client CA.
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            self.app = _with_tls(self.app, tls_extension(ssl_object))


def uvicorn_tls_options(s: Settings) -> dict[str, Any]:
    """uvicorn's ``ssl_*`` options from the settings (none without a certificate)."""
    if s.tls_cert is None:
        return {}
    options: dict[str, Any] = {"ssl_certfile": str(s.tls_cert), "http": PeerCertificateProtocol}
    if s.tls_key is not None:
        options["ssl_keyfile"] = str(s.tls_key)
    if s.tls_client_ca is not None:
        options["ssl_ca_certs"] = str(s.tls_client_ca)
        options["ssl_cert_reqs"] = ssl.CERT_OPTIONAL
    return options


def _check_tls(s: Settings) -> None:
    """Fail before listening when the TLS files cannot be read."""
    if s.tls_cert is None and (s.tls_key is not None or s.tls_client_ca is not None):
        raise SystemExit("error: --tls-key and --tls-client-ca need --tls-cert")
    if s.tls_cert is None:
        return
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(s.tls_cert, s.tls_key)
        if s.tls_client_ca is not None:
            context.load_verify_locations(s.tls_client_ca)
    except (OSError, ssl.SSLError) as exc:
        raise SystemExit(f"error: cannot use the TLS files: {exc}") from None


def prepare_multiprocess_metrics(data_dir: Path) -> Path:
    """Point prometheus-client's multiprocess mode at a fresh ``<data-dir>/prometheus``
    (wiped: files of a previous run's workers would be counted again). Must run
    before the workers start: prometheus-client reads the variable when imported."""
    directory = data_dir / "prometheus"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True, mode=0o700)
    os.environ[MULTIPROC_ENV] = str(directory)
    return directory


def store_paths(s: Settings) -> list[Path]:
    """Where the service keeps files: the data dir, a SQLite database outside it (with
    its -wal, -shm, sidecar and locks) and the ``file://`` sites."""
    roots = [s.data_dir]
    database = sqlite_file(s.database())
    if database is not None and not database.resolve().is_relative_to(s.data_dir.resolve()):
        roots += sorted(database.parent.glob(glob.escape(database.name) + "*"))
    sites = (urlparse(url) for url in s.site_urls())
    return roots + [Path(site.path) for site in sites if site.scheme == "file"]


def warn_about_wide_modes(roots: list[Path]) -> int:
    """Log a warning for each path under ``roots`` that group or others may use (at
    most ``MAX_MODE_WARNINGS``, then one line with the count); how many there were.
    The modes are not changed: an operator may have opened them on purpose."""
    count = 0
    for path, mode in wider_than_private(roots):
        count += 1
        if count <= MAX_MODE_WARNINGS:
            wanted = PRIVATE_DIR if path.is_dir() else PRIVATE_FILE
            _files_log.warning(
                "%s is %04o, wider than %04o: other users of this host may reach it (chmod %o %s)",
                path,
                mode,
                wanted,
                wanted,
                path,
                extra={"path": str(path), "mode": f"{mode:04o}"},
            )
    if count > MAX_MODE_WARNINGS:
        _files_log.warning(
            "%d more paths are wider than private (0700 directories, 0600 files)",
            count - MAX_MODE_WARNINGS,
        )
    return count


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host``:``port`` and listening, inheritable by worker
    processes (as uvicorn's ``Config.bind_socket`` makes it, listening already so that
    no other process can take the port between this check and the banner).

    Raises ``SystemExit`` with one line naming the address and the reason (in use,
    not allowed, no such address) when it cannot be had."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # As uvicorn does: a port whose last connections linger in TIME_WAIT is free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(LISTEN_BACKLOG)
    except OSError as exc:
        sock.close()
        address = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
        reason = exc.strerror or str(exc)
        raise SystemExit(
            f"error: cannot listen on {address}: {reason[:1].lower()}{reason[1:]}"
        ) from None
    sock.set_inheritable(True)
    return sock


def run_server(
    data_dir: Path | None,
    db: str | None,
    host: str | None,
    port: int | None,
    workers: int = 1,
    tls: dict[str, Path | None] | None = None,
) -> None:
    """Listen, open the store, print the URL (and the bootstrap owner key on first
    start), serve.

    ``tls`` holds ``tls_cert``, ``tls_key`` and ``tls_client_ca`` given on the command
    line (they override ``TENURE_TLS_*``). With ``workers`` > 1, that many processes
    serve the same store (each with its own ledger writer; SQLite's write lock orders
    their commits); they read their settings from ``TENURE_*``, so the options given
    here are passed on that way. A port that cannot be listened on ends the command
    with one line before anything else happens (no banner, no bootstrap key).
    """
    s = settings(data_dir, db, host=host, port=port, **(tls or {}))
    _check_tls(s)
    sock = listening_socket(s.host, s.port)
    log_config = uvicorn_log_config(resolve_log_format(s.log_format, sys.stderr))
    # The lines uvicorn will log through, from the start: the file-mode warnings go
    # out in the same format (and migrations stay quiet below WARNING).
    logging.config.dictConfig(log_config)
    warn_about_wide_modes(store_paths(s))
    runtime = Runtime.open(s)
    key = ensure_bootstrap_owner(runtime.store, s.data_dir, s.default_account)
    _print_banner(s, sock.getsockname()[1], key)
    # Our access line (tenure.access, with the trace id) replaces uvicorn's. Forwarded
    # headers are the app's to believe (TENURE_FORWARDED_ALLOW_IPS): uvicorn's default
    # would trust them from any loopback peer.
    options = uvicorn_tls_options(s) | {
        "host": s.host,
        "port": sock.getsockname()[1],
        "log_config": log_config,
        "log_level": "info",
        "access_log": False,
        "proxy_headers": False,
    }
    if workers == 1:
        config = uvicorn.Config(create_app(s, runtime, serving=True), **options)
        _serve_in_this_process(uvicorn.Server(config), sock)
        return
    runtime.close()
    _pass_settings_to_workers(s)
    config = uvicorn.Config(APP_FACTORY, factory=True, workers=workers, **options)
    Multiprocess(config, sockets=[sock]).run()


def _print_banner(s: Settings, port: int, key: str | None) -> None:
    url = f"{'https' if s.tls_cert else 'http'}://{s.host}:{port}"
    out.print(f"Tenure listening on {url}  (database {s.database()})", highlight=False)
    if key:
        out.print(f"Bootstrap owner API key (shown once): {key}", highlight=False)
        out.print(f"  also written to {s.data_dir / BOOTSTRAP_FILE} (mode 0600)", highlight=False)
    else:
        out.print(f"Owner key: see {s.data_dir / BOOTSTRAP_FILE}", highlight=False)
    out.print(
        f"Try: curl -H 'Authorization: Bearer <key>' {url}/v1/ledger/checkpoint", highlight=False
    )
    out.print(f"Console: {url}/console  (sign in with an API key)", highlight=False)
    out.print(f"Metrics: {url}/metrics  Health: {url}/readyz", highlight=False)


def _serve_in_this_process(server: uvicorn.Server, sock: socket.socket) -> None:
    """Serve on ``sock`` until stopped; exit 3 (uvicorn's startup failure) when the
    app did not start, as ``uvicorn.run`` does."""
    # uvicorn raises the signal that stopped it again once it is done: Ctrl-C
    # becomes a KeyboardInterrupt here, the end of a normal stop.
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[sock])
    if not server.started:
        raise SystemExit(STARTUP_FAILURE)


def _pass_settings_to_workers(s: Settings) -> None:
    """The workers build their settings from ``TENURE_*`` (``app_from_env``): the
    command-line options and a fresh multiprocess metrics directory go there."""
    prepare_multiprocess_metrics(s.data_dir)
    os.environ["TENURE_DATA_DIR"] = str(s.data_dir)
    if s.database_url:
        os.environ["TENURE_DATABASE_URL"] = s.database_url
    for name in ("tls_cert", "tls_key", "tls_client_ca"):
        value = getattr(s, name)
        if value is not None:
            os.environ[f"TENURE_{name.upper()}"] = str(value)
