"""``tenure db status|upgrade|downgrade``: the database schema against this release."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tenure import __version__
from tenure.app.runtime import upgrade_schema
from tenure.cli.common import Output, OutputOption, emit
from tenure.cli.local import Storage, storage_options
from tenure.config import Settings
from tenure.durability import upgrades
from tenure.store.databases import sqlite_file

app = typer.Typer(
    help="The database schema: its revision, upgrades (after a snapshot), refused downgrades. "
    "Other commands refuse a database whose schema is not this release's head.",
    no_args_is_help=True,
)


def _status(s: Settings) -> upgrades.SchemaStatus:
    """The schema status, without creating a database where there is none."""
    path = sqlite_file(s.database())
    if path is not None and not path.exists():
        return upgrades.status_of(None)
    return upgrades.schema_status(s.database())


@app.command("status")
@storage_options
def status(storage: Storage = Storage(), output: OutputOption = Output.text) -> None:
    """Print the database's schema revision, this release's head, and whether an
    upgrade is pending."""
    s = storage.settings()
    found = _status(s)
    current = found.current or "none"
    verdict = (
        f"upgrade pending: {', '.join(found.pending)} (run `tenure db upgrade`)"
        if found.upgrade_pending
        else "up to date"
    )
    emit(
        output,
        {
            "database": s.database(),
            "current": found.current,
            "head": found.head,
            "release": __version__,
            "pending": list(found.pending),
            "upgrade_pending": found.upgrade_pending,
        },
        f"database  {s.database()}\nschema    {current}\n"
        f"head      {found.head} (tenure {__version__})\n{verdict}",
    )


@app.command("upgrade")
@storage_options
def upgrade(storage: Storage = Storage(), output: OutputOption = Output.text) -> None:
    """Snapshot every account (to every site; without sites, to <data-dir>/pre-upgrade/),
    then apply the pending migrations. Fails before migrating if a snapshot fails."""
    s = storage.settings()
    before = _status(s)
    if not before.upgrade_pending:
        emit(
            output,
            {"from": before.current, "to": before.head, "applied": [], "snapshots": []},
            f"schema {before.head} is this release's head: nothing to upgrade",
        )
        return
    done = upgrade_schema(s)
    taken, urls = done.snapshots, done.sites
    lines = [
        f"snapshot of {t.account} at {t.size} events: {t.path} (to {', '.join(urls)})"
        for t in taken
    ]
    lines.append(
        f"upgraded schema {before.current or 'none'} -> {before.head}: "
        f"applied {', '.join(before.pending)}"
    )
    emit(
        output,
        {
            "from": before.current,
            "to": before.head,
            "applied": list(before.pending),
            "snapshots": [{"account": t.account, "size": t.size, "path": t.path} for t in taken],
            "sites": urls,
        },
        "\n".join(lines),
    )


@app.command("downgrade")
@storage_options
def downgrade(
    revision: Annotated[str, typer.Argument(help="Schema revision to go back to (or base).")],
    storage: Storage = Storage(),
    output: OutputOption = Output.text,
) -> None:
    """Undo migrations down to REVISION, only if each declares itself reversible;
    otherwise refuse, naming the first that does not (restore a snapshot instead)."""
    s = storage.settings()
    path = sqlite_file(s.database())
    if path is not None and not Path(path).exists():
        raise upgrades.DowngradeRefused(f"no Tenure database at {path}: nothing to downgrade")
    undone = upgrades.apply_downgrade(s.database(), revision)
    emit(
        output,
        {"to": revision, "undone": undone},
        f"downgraded to {revision}: undid {', '.join(undone)}" if undone else "nothing to undo",
    )
