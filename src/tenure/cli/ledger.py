"""``tenure ledger verify|checkpoint|key|proof|export``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from tenure.app.runtime import Runtime
from tenure.cli.common import Output, OutputOption, emit, progress_bar, root_text
from tenure.cli.local import Account, Storage, storage_options
from tenure.errors import LedgerTampered, StateTampered
from tenure.service import queries
from tenure.service.ledger import SignRequest
from tenure.service.replay import digest_of
from tenure.service.verify import verify_ledger

app = typer.Typer(help="Ledger integrity, checkpoints and proofs.", no_args_is_help=True)
proof_app = typer.Typer(help="RFC 9162 proofs from the stored tree.", no_args_is_help=True)
app.add_typer(proof_app, name="proof")


@app.command("verify")
@storage_options
def verify(
    storage: Storage = Storage(),
    account: Account = "default",
    key: Annotated[
        list[str] | None,
        typer.Option("--key", help="Trusted verifier key (name+hash+base64); repeatable."),
    ] = None,
    since_checkpoint: Annotated[
        Path | None,
        typer.Option(
            help="A signed checkpoint kept outside the store (a file): the store must hold "
            "its events with its root, or its history was cut or rewritten.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    output: OutputOption = Output.text,
) -> None:
    """Recompute every leaf hash and the tree from the stored events, check every stored
    checkpoint's signature and consistency, and replay the ledger to prove the stored
    projection and state map and every signed state root; on tampering, name the first
    bad seq or row and exit 1."""
    with storage.open(migrate=False) as runtime:
        try:
            # The head alone sizes the progress bar, read like every other row: as hostile.
            with runtime.store.read() as tx:
                head = tx.ledger.head(account)
            with progress_bar("verifying", head.size if head else 0) as update:
                report = verify_ledger(
                    runtime.store,
                    account,
                    runtime.sidecar,
                    pinned=key or (),
                    progress=update,
                    kept=since_checkpoint.read_text() if since_checkpoint else None,
                )
        except LedgerTampered as exc:
            where = f"first bad seq {exc.seq}" if exc.seq is not None else "seq unknown"
            if isinstance(exc, StateTampered):
                where = "state" if exc.table is None else f"row {exc.table} {exc.key}"
            emit(
                output,
                {"ok": False, "seq": exc.seq, "error": exc.message, **_row_of(exc)},
                f"TAMPERED ({where}): {exc}",
            )
            raise typer.Exit(1) from exc
    root = root_text(report.root)
    emit(
        output,
        {
            "ok": True,
            "size": report.size,
            "root": root,
            "checkpoints": report.checkpoints,
            "state_roots": report.state_roots,
        },
        f"ok: {report.size} events, root {root}, {report.checkpoints} checkpoints verified, "
        f"state proven by replay against {report.state_roots} signed state roots",
    )


def _row_of(error: LedgerTampered) -> dict[str, object]:
    """The differing row a ``StateTampered`` names, for the JSON output."""
    if isinstance(error, StateTampered) and error.table is not None:
        return {"table": error.table, "key": error.key}
    return {}


@app.command("checkpoint")
@storage_options
def checkpoint(
    storage: Storage = Storage(),
    account: Account = "default",
    sign: Annotated[
        bool, typer.Option("--sign", help="Sign a checkpoint of the current tree first.")
    ] = False,
    size: Annotated[
        int | None, typer.Option(help="Print the stored checkpoint of this size.")
    ] = None,
) -> None:
    """Print the latest signed checkpoint (C2SP signed note)."""
    with storage.open() as runtime:
        if sign:
            with runtime.ledger() as ledger:
                ledger.execute(SignRequest(account))
        note = queries.checkpoint_note(runtime.store, account, size)
    sys.stdout.write(note)


@app.command("key")
@storage_options
def key(
    storage: Storage = Storage(),
    account: Account = "default",
    output: OutputOption = Output.text,
) -> None:
    """Print the account's ledger verifier key(s), one per line (name+hash+base64).

    The same lines as GET /v1/ledger/key: what auditors pin, and what an application
    ships as LicenseClient(..., ledger_key=...). Fails while the ledger has no key yet.
    """
    with storage.open(migrate=False) as runtime:
        keys = queries.verifier_keys(runtime.store, account)
    if output is Output.json:
        emit(output, {"keys": keys}, "")
    else:  # written as is: a console would wrap a long key, and a pasted key must not break
        sys.stdout.write("".join(line + "\n" for line in keys))


@proof_app.command("inclusion")
@storage_options
def inclusion(
    seq: Annotated[int, typer.Argument(help="Event seq to prove.")],
    size: Annotated[
        int | None, typer.Option(help="Tree size (default: the latest checkpoint).")
    ] = None,
    storage: Storage = Storage(),
    account: Account = "default",
    output: OutputOption = Output.json,
) -> None:
    """Inclusion proof of event SEQ (same JSON as GET /v1/ledger/proof/inclusion)."""
    with storage.open(migrate=False) as runtime:
        tree = size if size is not None else _latest_size(runtime, account)
        result = queries.inclusion(runtime.store, account, seq, tree)
    emit(output, result, "\n".join(result["proof"]))


@proof_app.command("consistency")
@storage_options
def consistency(
    old: Annotated[int, typer.Argument(help="Older tree size.")],
    new: Annotated[int, typer.Argument(help="Newer tree size.")],
    storage: Storage = Storage(),
    account: Account = "default",
    output: OutputOption = Output.json,
) -> None:
    """Consistency proof between two tree sizes (same JSON as the API)."""
    with storage.open(migrate=False) as runtime:
        result = queries.consistency(runtime.store, account, old, new)
    emit(output, result, "\n".join(result["proof"]))


@app.command("export")
@storage_options
def export(
    storage: Storage = Storage(),
    account: Account = "default",
    start: Annotated[int, typer.Option(min=0, help="First seq.")] = 0,
) -> None:
    """Write the ledger's leaves, one canonical JSON event per line, to stdout."""
    with storage.open(migrate=False) as runtime, runtime.store.read() as tx:
        for _, leaf in tx.ledger.leaves(account, start):
            sys.stdout.buffer.write(leaf + b"\n")


def _latest_size(runtime: Runtime, account: str) -> int:
    stored = queries.latest_checkpoint(runtime.store, account)
    return stored.size if stored else digest_of(runtime.store, account).size
