"""``endpoint_options``: the commands that talk to the service declare ``--url`` and
``--api-key`` once, as one ``Endpoint``, and their ``--help`` lists the two options
where each command used to declare them (just before ``--output``)."""

from __future__ import annotations

from typing import Annotated

import pytest
import typer
from typer.testing import CliRunner

from tenure.cli.client import Endpoint, endpoint_options
from tenure.cli.common import Output, OutputOption

calls: list[tuple[Endpoint, str, str | None, Output]] = []


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.command("show")
    @endpoint_options
    def show(
        endpoint: Endpoint,
        thing: Annotated[str, typer.Argument(metavar="THING")],
        note: Annotated[str | None, typer.Option("--note")] = None,
        output: OutputOption = Output.text,
    ) -> None:
        """Show a thing."""
        calls.append((endpoint, thing, note, output))

    @app.command("other")
    def other() -> None:
        """Keeps ``show`` a subcommand."""

    return app


def test_the_command_gets_the_endpoint_its_options_name() -> None:
    calls.clear()
    args = ["show", "t1", "--api-key", "k", "--url", "http://x", "--note", "n", "-o", "json"]
    done = CliRunner().invoke(_app(), args)
    assert done.exit_code == 0, done.output
    assert calls == [(Endpoint("http://x", "k"), "t1", "n", Output.json)]


def test_without_the_options_the_endpoint_names_neither() -> None:
    calls.clear()
    done = CliRunner().invoke(_app(), ["show", "t2"])
    assert done.exit_code == 0, done.output
    assert calls == [(Endpoint(None, None), "t2", None, Output.text)]


def test_help_lists_url_and_api_key_just_before_output() -> None:
    done = CliRunner().invoke(_app(), ["show", "--help"], env={"COLUMNS": "200"})
    assert done.exit_code == 0, done.output
    options = [
        word
        for line in done.output.splitlines()
        for word in line.replace(",", " ").split()
        if word in ("--note", "--url", "--api-key", "--output")
    ]
    assert options == ["--note", "--url", "--api-key", "--output"]
    assert "Show a thing." in done.output


def test_a_command_without_endpoint_first_is_refused() -> None:
    def misplaced(output: OutputOption = Output.text, endpoint: Endpoint | None = None) -> None:
        """Endpoint last."""

    with pytest.raises(TypeError, match="endpoint first"):
        endpoint_options(misplaced)
