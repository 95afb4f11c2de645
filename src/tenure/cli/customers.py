"""``tenure customer create|show`` over HTTP; ``tenure customer erase`` on the storage."""

from __future__ import annotations

import getpass
from typing import Annotated, Any

import typer

from tenure.cli.client import Endpoint, IdempotencyKeyOption, emit_answer, endpoint_options
from tenure.cli.common import Output, OutputOption, emit
from tenure.cli.local import Account, Storage, storage_options
from tenure.service.apikeys import Principal
from tenure.service.handlers import licensing as cases

app = typer.Typer(help="Customers of the account.", no_args_is_help=True)


def _print_customer(customer: dict[str, Any], headline: str, output: Output) -> None:
    emit_answer(customer, output, lambda: _customer_lines(customer, headline))


def _customer_lines(customer: dict[str, Any], headline: str) -> list[str]:
    # An erased customer's name and e-mail are gone for good (null in the API).
    gone = "erased" if customer.get("erased") else "-"
    lines = [
        headline,
        f"  name         {customer.get('name') or gone}",
        f"  email        {customer.get('email') or gone}",
        f"  external_id  {customer.get('external_id') or '-'}",
    ]
    if customer.get("erased"):
        lines.append("  ERASED: personal data destroyed")
    return lines


@app.command("create")
@endpoint_options
def create(
    name: Annotated[str, typer.Option("--name", help="Customer name.")],
    email: Annotated[str, typer.Option("--email", help="Contact e-mail.")],
    external_id: Annotated[
        str | None,
        typer.Option(
            "--external-id",
            help="Your id for the customer (e.g. CRM); the same id and details find the "
            "existing customer.",
        ),
    ] = None,
    idempotency_key: IdempotencyKeyOption = None,
    endpoint: Endpoint = Endpoint(),
    output: OutputOption = Output.text,
) -> None:
    """Create a customer and print its id (an existing one for the same external id)."""
    body: dict[str, Any] = {"name": name, "email": email}
    if external_id is not None:
        body["external_id"] = external_id
    status, customer = endpoint.remote().post(
        "/v1/customers", body, idempotency_key=idempotency_key
    )
    verb = "created" if status == 201 else "existing"
    _print_customer(customer, f"{verb} customer {customer['id']}", output)


@app.command("show")
@endpoint_options
def show(
    customer_id: Annotated[str, typer.Argument(metavar="ID", help="Customer id (cus_…).")],
    endpoint: Endpoint = Endpoint(),
    output: OutputOption = Output.text,
) -> None:
    """Show one customer."""
    customer = endpoint.remote().get(f"/v1/customers/{customer_id}")
    _print_customer(customer, f"customer {customer['id']}", output)


@app.command("erase")
@storage_options
def erase(
    customer_id: Annotated[str, typer.Argument(metavar="ID", help="Customer id (cus_…).")],
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded in the event).")],
    storage: Storage = Storage(),
    account: Account = "default",
    output: OutputOption = Output.text,
) -> None:
    """Erase a customer's personal data (crypto-shredding): record customer.erased in
    the ledger, then destroy the customer's data key. Licenses keep working; the
    ledger still verifies. Works on the storage (stop nothing: the writer serializes)."""
    operator = Principal(f"cli:{getpass.getuser()}", account, "admin", "local")
    with storage.open() as runtime:
        assert runtime.personal is not None  # Runtime.open always sets it
        with runtime.ledger() as ledger:
            result = cases.erase_customer(
                ledger.execute, runtime.store, runtime.personal, operator, customer_id, reason
            )
    state = "already erased" if result["already"] else "erased"
    key = "key destroyed" if result["key_destroyed"] else "no key was left"
    emit(output, result, f"customer {customer_id} {state} ({key})")
