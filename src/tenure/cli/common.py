"""Options and helpers shared by the commands."""

from __future__ import annotations

import base64
import functools
import inspect
import json
import sys
from collections.abc import Callable, Iterator, Mapping
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


def gather_options(
    command: Callable[..., None],
    parameter: str,
    options: Mapping[str, Any],
    value: Callable[..., Any],
) -> Callable[..., None]:
    """``command`` as Typer should see it: its ``parameter`` replaced, where it stands
    (so ``--help`` lists them there), by the ``options`` (parameter name → its
    ``Annotated`` type, each defaulting to None), and called with
    ``value(**their values)`` as ``parameter``. Raises ``TypeError`` if ``command`` has
    no such parameter."""
    signature = inspect.signature(command, eval_str=True)
    names = list(signature.parameters)
    if parameter not in names:
        raise TypeError(f"{command.__name__} takes no {parameter}")
    at = names.index(parameter)
    kind = signature.parameters[parameter].kind
    gathered = [
        inspect.Parameter(name, kind, default=None, annotation=option)
        for name, option in options.items()
    ]
    own = list(signature.parameters.values())

    @functools.wraps(command)
    def with_options(*args: Any, **given: Any) -> None:
        values = {name: given.pop(name) for name in options}
        command(*args, **given, **{parameter: value(**values)})

    # Typer reads the parameters from the signature, so this one is what it declares.
    with_options.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*own[:at], *gathered, *own[at + 1 :]]
    )
    return with_options


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
