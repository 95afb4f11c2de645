"""``tenure account create|list|show`` over HTTP (owner keys only)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from tenure.cli.client import Endpoint, emit_answer, emit_json, endpoint_options, print_table
from tenure.cli.common import Output, OutputOption

app = typer.Typer(
    help="Accounts (tenants). Owners of the operator account create them and see them "
    "all; any other owner sees only its own.",
    no_args_is_help=True,
)


@app.command("create")
@endpoint_options
def create(
    account_id: Annotated[
        str,
        typer.Argument(
            metavar="ID", help="Lower-case letters, digits and dashes (appears in URLs)."
        ),
    ],
    name: Annotated[str, typer.Option("--name", help="A name for people.")],
    endpoint: Endpoint = Endpoint(),
    output: OutputOption = Output.text,
) -> None:
    """Create an account and print its first owner key, once: it is stored only as a
    hash. The account's ledger starts with a signed empty checkpoint."""
    _, created = endpoint.remote().post("/v1/accounts", {"id": account_id, "name": name})
    emit_answer(
        created,
        output,
        lambda: [
            f"created account {created['id']} ({created['name']})",
            f"  owner key id  {created['owner_key_id']}",
            f"OWNER KEY: {created['owner_key']}",
            "  shown once: the service keeps only its hash; store it now.",
        ],
    )


def _table(accounts: list[dict[str, Any]]) -> None:
    table = Table("id", "name", "created_at")
    for account in accounts:
        table.add_row(str(account["id"]), str(account["name"]), str(account["created_at"]))
    print_table(table)


@app.command("list")
@endpoint_options
def list_command(endpoint: Endpoint = Endpoint(), output: OutputOption = Output.text) -> None:
    """List the accounts this owner key may see."""
    answer = endpoint.remote().get("/v1/accounts")
    if output is Output.json:
        emit_json(answer)
        return
    _table(answer["accounts"])


@app.command("show")
@endpoint_options
def show(
    account_id: Annotated[str, typer.Argument(metavar="ID", help="Account id.")],
    endpoint: Endpoint = Endpoint(),
    output: OutputOption = Output.text,
) -> None:
    """Show one account (404 for one this owner key may not see)."""
    answer = endpoint.remote().get(f"/v1/accounts/{account_id}")
    if output is Output.json:
        emit_json(answer)
        return
    _table([answer])
