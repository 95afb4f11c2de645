"""``tenure catalog apply``: diff and apply the declarative catalog over HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from tenure.cli.approvals import print_approval_requested
from tenure.cli.client import Endpoint, emit_json, endpoint_options, print_table
from tenure.cli.common import Output, OutputOption, out, value_text
from tenure.errors import InvalidInput

app = typer.Typer(help="The declarative catalog of products and plans.", no_args_is_help=True)


def _product_changes(product: dict[str, Any]) -> str:
    parts: list[str] = []
    if product.get("previous_name"):
        parts.append(f"name {product['previous_name']} → {product['name']}")
    added = product.get("added_features") or []
    if added:
        parts.append("features +" + ", +".join(added))
    return "; ".join(parts)


def _plan_changes(plan: dict[str, Any]) -> str:
    parts = [
        f"{e['key']} {value_text(e['from'])} → {value_text(e['to'])}"
        for e in plan.get("entitlements", [])
    ]
    parts += [
        f"{s['field']} {value_text(s['from'])} → {value_text(s['to'])}"
        for s in plan.get("settings", [])
    ]
    if plan.get("takes_away"):
        parts.append("TAKES AWAY")
    return "; ".join(parts)


def diff_table(diff: dict[str, Any]) -> Table:
    table = Table("code", "kind", "action", "version", "changes")
    for product in diff.get("products", []):
        table.add_row(product["code"], "product", product["action"], "", _product_changes(product))
    for plan in diff.get("plans", []):
        previous = plan.get("previous_version")
        version = f"{previous} → {plan['version']}" if previous else str(plan["version"])
        table.add_row(plan["code"], "plan", plan["action"], version, _plan_changes(plan))
    return table


@app.command("apply")
@endpoint_options
def apply(
    file: Annotated[Path, typer.Option("--file", "-f", help="Catalog YAML file.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the diff without appending anything.")
    ] = False,
    endpoint: Endpoint = Endpoint(),
    output: OutputOption = Output.text,
) -> None:
    """Send the catalog to the service and print the diff (owner or admin).

    Each created or changed product or plan is one ledger event; applying the same
    file again changes nothing. A new version of a plan with licenses that takes
    entitlements away needs a second principal's approval: this prints the request.
    """
    try:
        body = file.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read {file}: {exc.strerror or exc}", field="file") from None
    remote = endpoint.remote()
    response = remote.request(
        "POST",
        "/v1/catalog",
        params={"dry_run": "true" if dry_run else None},
        content=body,
        headers={"Content-Type": "application/yaml"},
    )
    diff: dict[str, Any] = response.json()
    if response.status_code == 202:  # takes entitlements from licensed plans
        print_approval_requested(diff, output)
        return
    if output is Output.json:
        emit_json({**diff, "dry_run": dry_run})
        return
    print_table(diff_table(diff))
    changes = diff.get("changes", 0)
    if dry_run:
        out.print(f"{changes} change(s) (dry run: nothing applied)", highlight=False)
    else:
        out.print(f"{changes} change(s) applied", highlight=False)
