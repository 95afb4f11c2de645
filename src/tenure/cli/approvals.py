"""``tenure approval …``: the two-person rule over HTTP (docs/approvals.md)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from tenure.cli.client import Endpoint, emit_answer, emit_json, endpoint_options, print_table
from tenure.cli.common import Output, OutputOption, out
from tenure.errors import InvalidInput

app = typer.Typer(
    help="Approval requests of dangerous actions: list, show, approve, reject.",
    no_args_is_help=True,
)

ApprovalArg = Annotated[str, typer.Argument(metavar="APPROVAL", help="Approval id (apr_…).")]
ReasonOption = Annotated[
    str | None, typer.Option("--reason", help="Why (required; recorded in the ledger event).")
]


def _lines(view: dict[str, Any]) -> list[str]:
    lines = [
        f"approval:     {view['approval']}",
        f"action:       {view['action']}",
        f"target:       {view['target']}",
        f"status:       {view['status']}",
        f"requested by: {view['requested_by']}",
        f"expires at:   {view['expires_at']}",
    ]
    if view.get("detail"):
        lines.append(f"detail:       {view['detail']}")
    for step in view.get("history", []):
        reason = f" ({step['reason']})" if step.get("reason") else ""
        lines.append(f"  {step['time']}  {step['type']}  by {step['actor']['id']}{reason}")
    return lines


@app.command("list")
@endpoint_options
def list_approvals(
    status: Annotated[
        str | None,
        typer.Option(
            "--status", help="Only pending, approved, rejected, expired, executed or failed ones."
        ),
    ] = None,
    endpoint: Endpoint = Endpoint(),
    output: OutputOption = Output.text,
) -> None:
    """List approval requests (newest expiry first)."""
    listing = endpoint.remote().get("/v1/approvals", params={"status": status})
    if output is Output.json:
        emit_json(listing)
        return
    table = Table("approval", "action", "target", "status", "requested by", "expires at")
    for view in listing["approvals"]:
        table.add_row(
            view["approval"],
            view["action"],
            view["target"],
            view["status"],
            view["requested_by"],
            view["expires_at"],
        )
    print_table(table)


@app.command("show")
@endpoint_options
def show(
    approval: ApprovalArg, endpoint: Endpoint = Endpoint(), output: OutputOption = Output.text
) -> None:
    """Show one approval request and its history (who did what, and why)."""
    view = endpoint.remote().get(f"/v1/approvals/{approval}")
    emit_answer(view, output, lambda: _lines(view))


def _decide(
    endpoint: Endpoint,
    approval: str,
    verdict: str,
    reason: str | None,
    output: Output,
) -> None:
    if reason is None or not reason.strip():
        raise InvalidInput(f"--reason is required to {verdict} a request", field="reason")
    _, answer = endpoint.remote().post(f"/v1/approvals/{approval}/{verdict}", {"reason": reason})
    if output is Output.json:
        emit_json(answer)
        return
    view = answer["approval"]
    out.print(f"{approval} is now {view['status']}", markup=False, highlight=False)
    if "error" in answer:
        error = answer["error"]
        out.print(f"error: {error['code']}: {error['detail']}", markup=False, highlight=False)


def _decision(verdict: str, doc: str) -> None:
    """Register ``tenure approval VERDICT``: a decision that takes only a reason."""

    def command(
        approval: ApprovalArg,
        reason: ReasonOption = None,
        endpoint: Endpoint = Endpoint(),
        output: OutputOption = Output.text,
    ) -> None:
        _decide(endpoint, approval, verdict, reason, output)

    command.__doc__ = doc
    app.command(verdict)(endpoint_options(command))


_decision("approve", "Approve a request made by another principal; the action runs once, now.")
_decision("reject", "Reject a request; its action never runs.")


def print_approval_requested(answer: dict[str, Any], output: Output) -> None:
    """What a gated command prints when the server answers 202: the request a
    second principal must approve."""
    emit_answer(answer, output, lambda: _requested_lines(answer["approval"]))


def _requested_lines(approval: dict[str, Any]) -> list[str]:
    return [
        f"approval requested: {approval['approval']} (expires {approval['expires_at']})",
        "another key with the needed role approves it: tenure approval approve "
        f"{approval['approval']} --reason …",
    ]
