"""``tenure audit verify|list``: check the audit chain on storage; page it over HTTP."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from tenure.cli.client import Endpoint, emit_listing, endpoint_options
from tenure.cli.common import Output, OutputOption, emit, err
from tenure.cli.local import Storage, storage_options
from tenure.errors import AuditTampered
from tenure.service import audit

app = typer.Typer(
    help="The audit log: every decision and every mutation request, hash-chained.",
    no_args_is_help=True,
)


@app.command("verify")
@storage_options
def verify(
    storage: Storage = Storage(),
    account: Annotated[
        str | None,
        typer.Option("--account", help="Only this account (default: every audited account)."),
    ] = None,
    output: OutputOption = Output.text,
) -> None:
    """Recheck every entry's hash and link, that every column of its row (account,
    seq, time, principal, action, outcome, target) holds what the entry says, the
    chain's head, and that the entries account for every ledger event since auditing
    began; on tampering, name the first bad entry (and column) and exit 1. Works on
    the store directly (--data-dir / --db)."""
    reports = []
    try:
        with storage.open(migrate=False) as runtime, runtime.store.read() as tx:
            accounts = [account] if account else audit.audited_accounts(tx.audit)
            for name in accounts:
                head = tx.ledger.head(name)
                reports.append(audit.verify(tx.audit, name, head.size if head else 0))
    except AuditTampered as exc:
        emit(
            output,
            {"ok": False, "seq": exc.seq, "column": exc.column, "error": exc.message},
            f"TAMPERED (first bad entry {exc.seq}): {exc}",
        )
        raise typer.Exit(1) from exc
    lines = [
        f"ok: {r.account}: {r.size} entries, head {r.head[:16]}…, "
        + (
            f"ledger events {r.events[0]}..{r.events[1] - 1} accounted for"
            if r.events
            else "no ledger events audited yet"
        )
        for r in reports
    ]
    emit(
        output,
        {"ok": True, "accounts": [r.to_json() for r in reports]},
        "\n".join(lines) or "ok: no audit entries yet",
    )


def _principal(who: dict[str, Any]) -> str:
    """``role:key_…`` for API keys; a license principal's id already says it."""
    ident = str(who.get("id", "-"))
    return ident if ident.startswith("license:") else f"{who.get('role', '-')}:{ident}"


def _text(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)


@app.command("list")
@endpoint_options
def list_command(
    action: Annotated[
        str | None,
        typer.Option(
            "--action",
            help="Only this action (check, issue_license, suspend_license, create_api_key, …).",
        ),
    ] = None,
    outcome: Annotated[
        str | None, typer.Option("--outcome", help="Only allowed or denied.")
    ] = None,
    principal: Annotated[
        str | None, typer.Option("--principal", help="Only this API key id or license:<serial>.")
    ] = None,
    target: Annotated[
        str | None, typer.Option("--target", help="Only about this serial, customer or key id.")
    ] = None,
    newest: Annotated[
        bool, typer.Option("--newest", help="Newest entries first (default: oldest first).")
    ] = False,
    limit: Annotated[
        int, typer.Option("--limit", help="Page size.", min=1, max=audit.MAX_PAGE)
    ] = 50,
    cursor: Annotated[
        int | None, typer.Option("--cursor", help="Continue after a previous page.")
    ] = None,
    endpoint: Endpoint = Endpoint(),
    output: OutputOption = Output.text,
) -> None:
    """Page the account's audit log (auditor or owner key)."""
    page = endpoint.remote().get(
        "/v1/audit",
        {
            "action": action,
            "outcome": outcome,
            "principal": principal,
            "target": target,
            "order": "desc" if newest else "asc",
            "limit": limit,
            "cursor": cursor,
        },
    )

    def row(entry: dict[str, Any]) -> tuple[str, ...]:
        events = entry.get("events")
        return (
            str(entry.get("seq")),
            _text(entry.get("time")),
            _principal(entry.get("principal") or {}),
            *(_text(entry.get(f)) for f in ("action", "target", "outcome", "code")),
            f"{events[0]}+{events[1]}" if events else "-",
        )

    json = output is Output.json
    columns = ("seq", "time", "principal", "action", "target", "outcome", "code", "events")
    emit_listing(page, "entries", json, columns, row)
    if not json and page.get("next_cursor") is not None:
        err.print(f"more: --cursor {page['next_cursor']}", highlight=False)
