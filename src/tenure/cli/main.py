"""``tenure``: one command, subcommands grouped by noun."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import pydantic
import typer

from tenure import __version__
from tenure.cli import (
    accounts,
    activations,
    apikeys,
    approvals,
    audit,
    catalog,
    check,
    customers,
    db,
    demo,
    durability,
    importing,
    keys,
    ledger,
    license_files,
    licenses,
    migrate,
    reconcile,
    state,
    tokens,
    webhooks,
)
from tenure.cli.common import err
from tenure.cli.local import DataDir, DbUrl
from tenure.crypto.files import PRIVATE_UMASK
from tenure.domain.storable import text_problem
from tenure.errors import TenureError
from tenure.store.databases import DatabaseError, database_error_text

app = typer.Typer(
    name="tenure",
    help="License entitlements on a tamper-evident ledger.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command("serve", context_settings={"help_option_names": ["--help"]})
def serve(
    data_dir: DataDir = None,
    db: DbUrl = None,
    host: Annotated[
        str | None, typer.Option(help="Interface to listen on (default 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (default 8080).")] = None,
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="Worker processes serving the same store.")
    ] = 1,
    tls_cert: Annotated[
        Path | None,
        typer.Option(help="PEM server certificate (chain): serve HTTPS. Env TENURE_TLS_CERT."),
    ] = None,
    tls_key: Annotated[
        Path | None,
        typer.Option(help="PEM private key of --tls-cert. Env TENURE_TLS_KEY."),
    ] = None,
    tls_client_ca: Annotated[
        Path | None,
        typer.Option(
            help="PEM CA bundle: ask clients for a certificate that verifies against it; "
            "API keys of the agent role then need one (else 403). Env TENURE_TLS_CLIENT_CA."
        ),
    ] = None,
) -> None:
    """Run the service; on first start, print the bootstrap owner API key once.

    The key is also written to <data-dir>/bootstrap-owner.key (mode 0600). A database
    at an older schema is upgraded on start after the snapshot `tenure db upgrade`
    takes, both logged (TENURE_UPGRADE_ON_START=false: refuse to start instead). With
    --tls-cert the service speaks HTTPS only (and sends Strict-Transport-Security);
    rate and body limits are TENURE_RATE_* and TENURE_MAX_BODY_BYTES (docs/hardening.md).
    """
    # Imported here: the web stack is the slowest import and only serve needs it.
    from tenure.cli.serve import run_server

    tls = {"tls_cert": tls_cert, "tls_key": tls_key, "tls_client_ca": tls_client_ca}
    run_server(data_dir, db, host, port, workers, tls)


# (name, sub-app or command): the order is the order of `tenure --help`.
_NOUNS: tuple[tuple[str, typer.Typer | Callable[..., None]], ...] = (
    ("demo", demo.app),
    ("state", state.app),
    ("ledger", ledger.app),
    ("db", db.app),
    ("catalog", catalog.app),
    ("customer", customers.app),
    ("license", licenses.app),
    ("account", accounts.app),
    ("apikey", apikeys.app),
    ("approval", approvals.app),
    ("audit", audit.app),
    ("activation", activations.app),
    ("token", tokens.app),
    ("keys", keys.app),
    ("license-file", license_files.app),
    ("check", check.check),
    ("import", importing.import_licenses),
    ("ship", durability.ship),
    ("restore", durability.restore),
    ("drill", durability.drill),
    ("snapshot", durability.snapshot_app),
    ("migrate", migrate.app),
    # --- Operations (docs/operations.md) ---
    ("webhook", webhooks.app),
    ("notice", webhooks.notice_app),
    ("alert", webhooks.alert_app),
    ("reconcile", reconcile.reconcile),
    ("drift", reconcile.drift_app),
)
for _name, _noun in _NOUNS:
    if isinstance(_noun, typer.Typer):
        app.add_typer(_noun, name=_name)
    else:
        app.command(_name)(_noun)


@app.command("version")
def version() -> None:
    """Print the Tenure version."""
    typer.echo(__version__)


def _print_version(asked: bool) -> None:
    if asked:
        version()
        raise typer.Exit()


@app.callback()
def main(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the Tenure version and exit.",
        ),
    ] = False,
) -> None:
    """License entitlements on a tamper-evident ledger."""


def _plain_help(group: typer.Typer) -> None:
    """Render every command's --help as plain text, as click does: Typer's Rich panels
    print a value type after flags that take none (``--help <bool>``)."""
    group.rich_markup_mode = None
    for sub in group.registered_groups:
        if sub.typer_instance is not None:
            _plain_help(sub.typer_instance)


_plain_help(app)


def _setting_error(exc: pydantic.ValidationError) -> str:
    """The first invalid setting, named as its environment variable, in one line."""
    first = exc.errors()[0]
    name = ".".join(str(part) for part in first["loc"])
    return f"TENURE_{name.upper()}: {first['msg']}"


def _not_utf8(exc: UnicodeEncodeError) -> str:
    """Which argument could not be encoded, shown with escapes (printing the lone
    surrogate itself would fail again)."""
    bad = next((arg for arg in sys.argv[1:] if text_problem(arg) is not None), None)
    if bad is None:
        return f"a value is not valid UTF-8 text ({exc.reason})"
    return f"the argument {bad!a} is not valid UTF-8 text"


def run() -> None:
    """Entry point: errors become one line on stderr and a non-zero exit status.

    Every file a command creates (the data dir, databases and their -wal/-shm,
    sidecars, keys, site files, exports) is for this user only: umask 0o077."""
    os.umask(PRIVATE_UMASK)
    try:
        # Without standalone mode click returns (not raises) a command's typer.Exit code.
        code = app(standalone_mode=False)
        if isinstance(code, int) and code != 0:
            sys.exit(code)
    except TenureError as exc:
        err.print(f"error: {exc}", highlight=False, markup=False, soft_wrap=True)
        sys.exit(1)
    except pydantic.ValidationError as exc:
        err.print(f"error: {_setting_error(exc)}", highlight=False, markup=False, soft_wrap=True)
        sys.exit(1)
    except DatabaseError as exc:
        detail = database_error_text(exc)
        err.print(f"error: database: {detail}", highlight=False, markup=False, soft_wrap=True)
        sys.exit(1)
    except UnicodeEncodeError as exc:
        # A byte that is not UTF-8 in an argument reaches Python as a lone surrogate,
        # which no database driver or file format can encode (docs/hardening.md).
        err.print(f"error: {_not_utf8(exc)}", highlight=False, markup=False, soft_wrap=True)
        sys.exit(1)
    except typer.Abort:
        err.print("aborted", highlight=False)
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:
        # Usage errors: click's ClickException, or the copy that newer Typer vendors
        # (typer._click); both can show themselves and carry an exit code.
        show, exit_code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if callable(show) and isinstance(exit_code, int):
            show()
            sys.exit(exit_code)
        raise
