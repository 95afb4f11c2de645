"""``tenure state digest``, ``rebuild``, ``export`` and ``root``."""

from __future__ import annotations

import base64
import sys
from typing import Annotated

import typer

from tenure.canonical import canonical_json
from tenure.cli.common import Output, OutputOption, emit, progress_bar
from tenure.cli.local import Account, Storage, storage_options
from tenure.service.replay import digest_of, rebuild
from tenure.service.state import export_state, state_root

app = typer.Typer(
    help="The projection: state digest, state map (export, root), rebuild by replay.",
    no_args_is_help=True,
)


@app.command("digest")
@storage_options
def digest(
    storage: Storage = Storage(),
    account: Account = "default",
    output: OutputOption = Output.text,
) -> None:
    """Print the state digest and the ledger size it corresponds to."""
    with storage.open(migrate=False) as runtime:
        report = digest_of(runtime.store, account)
    emit(
        output,
        {"account": account, "size": report.size, "digest": report.digest},
        f"{report.digest}  size={report.size}  account={account}",
    )


@app.command("rebuild")
@storage_options
def rebuild_command(
    storage: Storage = Storage(),
    account: Account = "default",
    accept_change: Annotated[
        bool,
        typer.Option(help="Keep the rebuilt projection even if its digest differs (repair)."),
    ] = False,
    output: OutputOption = Output.text,
) -> None:
    """Drop the projection, replay the whole ledger, and fail loudly if the digest changes."""
    with storage.open(migrate=False) as runtime:
        size = digest_of(runtime.store, account).size
        with progress_bar("replaying", size) as update:
            report = rebuild(runtime.store, account, progress=update, accept_change=accept_change)
    verdict = "digest changed (accepted)" if report.changed else "digest unchanged"
    emit(
        output,
        {"account": account, "size": report.size, "before": report.before, "after": report.after},
        f"rebuilt {report.size} events: {verdict}\n{report.after}  size={report.size}",
    )


@app.command("export")
@storage_options
def export_command(
    storage: Storage = Storage(),
    account: Account = "default",
) -> None:
    """Print every projection row as one JSON object a line, {"table", "key", "row"}:
    what the state map's root is computed from (docs/state.md)."""
    with storage.open(migrate=False) as runtime:
        for item in export_state(runtime.store, account):
            sys.stdout.write(canonical_json(item).decode() + "\n")


@app.command("root")
@storage_options
def root_command(
    storage: Storage = Storage(),
    account: Account = "default",
    output: OutputOption = Output.text,
) -> None:
    """Print the state map's root recomputed from the rows, and whether the root stored
    at the head and the latest checkpoint's tenure-state line agree (exit 1 if not)."""
    with storage.open(migrate=False) as runtime:
        report = state_root(runtime.store, account)

    def b64(value: bytes | None) -> str | None:
        return None if value is None else base64.b64encode(value).decode()

    emit(
        output,
        {
            "account": account,
            "size": report.size,
            "rows": report.rows,
            "root": b64(report.computed),
            "stored": b64(report.stored),
            "checkpoint": {"size": report.signed_size, "state": b64(report.signed)},
            "consistent": report.consistent,
        },
        f"{b64(report.computed)}  size={report.size}  rows={report.rows}  account={account}"
        + ("" if report.consistent else "\nthe stored or signed state root differs"),
    )
    if not report.consistent:
        raise typer.Exit(1)
