"""``tenure state digest`` and ``tenure state rebuild``."""

from __future__ import annotations

from typing import Annotated

import typer

from tenure.cli.common import Output, OutputOption, emit, progress_bar
from tenure.cli.local import Account, Storage, storage_options
from tenure.service.replay import digest_of, rebuild

app = typer.Typer(
    help="The projection: its state digest, and rebuilding it by replay.", no_args_is_help=True
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
