"""``tenure customer create|show`` over HTTP."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from tenure.cli.client import ApiKeyOption, IdempotencyKeyOption, Remote, UrlOption, emit_json
from tenure.cli.common import Output, OutputOption, out

app = typer.Typer(help="Customers of the account.", no_args_is_help=True)


def _print_customer(customer: dict[str, Any], headline: str, output: Output) -> None:
    if output is Output.json:
        emit_json(customer)
        return
    lines = [
        headline,
        f"  name         {customer.get('name')}",
        f"  email        {customer.get('email')}",
        f"  external_id  {customer.get('external_id') or '-'}",
    ]
    out.print("\n".join(lines), highlight=False, markup=False)


@app.command("create")
def create(
    name: Annotated[str, typer.Option("--name", help="Customer name.", show_default=False)],
    email: Annotated[str, typer.Option("--email", help="Contact e-mail.", show_default=False)],
    external_id: Annotated[
        str | None,
        typer.Option(
            "--external-id",
            help="Your id for the customer (e.g. CRM); the same id and details find the "
            "existing customer.",
            show_default=False,
        ),
    ] = None,
    idempotency_key: IdempotencyKeyOption = None,
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
    output: OutputOption = Output.text,
) -> None:
    """Create a customer and print its id (an existing one for the same external id)."""
    body: dict[str, Any] = {"name": name, "email": email}
    if external_id is not None:
        body["external_id"] = external_id
    status, customer = Remote(url, api_key).post(
        "/v1/customers", body, idempotency_key=idempotency_key
    )
    verb = "created" if status == 201 else "existing"
    _print_customer(customer, f"{verb} customer {customer['id']}", output)


@app.command("show")
def show(
    customer_id: Annotated[str, typer.Argument(metavar="ID", help="Customer id (cus_…).")],
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
    output: OutputOption = Output.text,
) -> None:
    """Show one customer."""
    customer = Remote(url, api_key).get(f"/v1/customers/{customer_id}")
    _print_customer(customer, f"customer {customer['id']}", output)
