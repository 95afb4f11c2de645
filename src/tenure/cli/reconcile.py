"""``tenure reconcile`` and ``tenure drift list``: drift over HTTP (docs/drift.md)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from tenure.cli.client import Endpoint, emit_json, emit_listing, endpoint_options, print_table
from tenure.cli.common import Output, OutputOption, out

drift_app = typer.Typer(
    help="Drift the reconciler found: list open findings.", no_args_is_help=True
)


def _counts_table(by_kind: dict[str, int]) -> Table:
    table = Table("kind", "open findings")
    for kind, count in by_kind.items():
        table.add_row(kind, str(count))
    table.add_row("total", str(sum(by_kind.values())))
    return table


@endpoint_options
def reconcile(endpoint: Endpoint = Endpoint(), output: OutputOption = Output.text) -> None:
    """Run a reconciliation pass on the service now and print its findings by kind."""
    _, summary = endpoint.remote().post("/v1/drift/reconcile")
    if output is Output.json:
        emit_json(summary)
        return
    print_table(_counts_table(summary["by_kind"]))
    line = (
        f"{summary['reports']} reports, {summary['activations']} activations, "
        f"{summary['corrections']} corrections, {summary['duration_seconds']:.3f} s"
    )
    out.print(line, markup=False, highlight=False)


@drift_app.command("list")
@endpoint_options
def list_drift(
    kind: Annotated[str | None, typer.Option("--kind", help="Only findings of this kind.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000, help="At most.")] = 100,
    endpoint: Endpoint = Endpoint(),
    output: OutputOption = Output.text,
) -> None:
    """List open drift findings (by kind, deployment, subject)."""
    emit_listing(
        endpoint.remote().get("/v1/drift", params={"kind": kind, "limit": limit}),
        "findings",
        output is Output.json,
        ("kind", "deployment", "subject", "detail", "first seen"),
        lambda f: (f["kind"], f["deployment"], f["subject"], f["detail"], f["first_seen"]),
    )
