"""``tenure``: one command, subcommands grouped by noun."""

from __future__ import annotations

import sys

import sqlalchemy
import typer

from tenure import __version__
from tenure.cli import demo, ledger, serve, state
from tenure.cli.common import err
from tenure.errors import TenureError

app = typer.Typer(
    name="tenure",
    help="License entitlements on a tamper-evident ledger.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("serve")(serve.serve)
app.add_typer(demo.app, name="demo")
app.add_typer(state.app, name="state")
app.add_typer(ledger.app, name="ledger")


@app.command("version")
def version() -> None:
    """Print the Tenure version."""
    typer.echo(__version__)


def run() -> None:
    """Entry point: errors become one line on stderr and a non-zero exit status."""
    try:
        app(standalone_mode=False)
    except TenureError as exc:
        err.print(f"error: {exc}", highlight=False, markup=False, soft_wrap=True)
        sys.exit(1)
    except sqlalchemy.exc.SQLAlchemyError as exc:
        orig = getattr(exc, "orig", None)
        detail = str(orig) if orig is not None else str(exc).splitlines()[0]
        err.print(f"error: database: {detail}", highlight=False, markup=False, soft_wrap=True)
        sys.exit(1)
    except typer.Abort:
        err.print("aborted", highlight=False)
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # click usage errors and the like
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
