"""``tenure import``: licenses of another licensing system, from CSV or JSON
(docs/import.md), appended to the local store through the ledger writer."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tenure.cli.common import Output, OutputOption, emit, progress_bar
from tenure.cli.local import Account, Storage, storage_options
from tenure.errors import InvalidInput
from tenure.service.legacy_import import Format, ImportReport, import_rows, parse_rows

FormatOption = Annotated[
    str | None, typer.Option("--format", help="csv or json (default: from the file's extension).")
]
SystemOption = Annotated[
    str,
    typer.Option(
        "--system",
        help="Name of the system the licenses come from (a code); legacy ids are "
        "unique per system.",
    ),
]


def _format(fmt: str | None, file: Path) -> Format:
    chosen = (fmt or file.suffix.lstrip(".")).lower()
    if chosen == "csv":
        return "csv"
    if chosen == "json":
        return "json"
    raise InvalidInput("--format must be csv or json", field="format")


def _summary(report: ImportReport) -> str:
    lines = [
        f"{len(report.imported)} imported, {len(report.already_imported)} already imported, "
        f"{len(report.errors)} failed (of {report.rows} rows) into {report.account} "
        f"from {report.system}"
    ]
    lines += [f"row {e.row}: {e.reason}" for e in sorted(report.errors, key=lambda e: e.row)]
    return "\n".join(lines)


@storage_options
def import_licenses(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="The CSV or JSON file.")],
    fmt: FormatOption = None,
    system: SystemOption = "legacy",
    storage: Storage = Storage(),
    account: Account = "default",
    output: OutputOption = Output.text,
) -> None:
    """Import licenses from another licensing system (see docs/import.md).

    Each row becomes a license (and its customer if new) mapped from its legacy id
    and key, all of its events or none. Running the same file again imports nothing
    new. Bad rows are reported with their row number and do not stop the import;
    the exit status is 1 when any row failed.
    """
    chosen = _format(fmt, file)
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read {file}: {exc.strerror or exc}", field="file") from None
    parsed = parse_rows(chosen, data)
    with (
        storage.open() as runtime,
        runtime.ledger() as ledger,
        progress_bar("importing", len(parsed)) as update,
    ):
        report = import_rows(ledger, runtime.store, account, system, parsed, progress=update)
    emit(output, report.to_json(), _summary(report))
    if report.errors:
        raise typer.Exit(1)
