"""Options and helpers shared by the commands."""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class Output(StrEnum):
    text = "text"
    json = "json"


OutputOption = Annotated[Output, typer.Option("--output", "-o", help="Output format.")]

err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)


def value_text(value: Any) -> str:
    """A value as the commands print it in text: ``-`` for none, ``true``/``false``."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def root_text(root: bytes | str) -> str:
    """A Merkle root as every command prints it: base64, as in signed checkpoints and
    the ledger API. ``root`` is the 32 raw bytes or their hex (as reports keep it)."""
    raw = bytes.fromhex(root) if isinstance(root, str) else root
    return base64.b64encode(raw).decode()


def emit(output: Output, data: Mapping[str, Any], text: str) -> None:
    if output is Output.json:
        sys.stdout.write(json.dumps(data, sort_keys=True) + "\n")
    else:
        out.print(text, highlight=False)


@contextmanager
def progress_bar(label: str, total: int | None) -> Iterator[Any]:
    """A progress bar on stderr; yields ``update(done)``."""
    with Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
        disable=not err.is_terminal,
    ) as progress:
        task = progress.add_task(label, total=total)
        yield lambda done: progress.update(task, completed=done)
