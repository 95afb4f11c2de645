"""``gather_options``: options that travel together (``--url`` and ``--api-key``;
``--data-dir`` and ``--db``) are declared once and reach a command as one value, and
``--help`` lists them where the command's parameter stands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pytest
import typer
from typer.testing import CliRunner

from tenure.cli.client import Endpoint, endpoint_options, license_endpoint_options
from tenure.cli.common import Output, OutputOption, gather_options
from tenure.cli.local import Storage, storage_options

calls: list[tuple[str, Storage, str | None, Endpoint, Output]] = []


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.command("show")
    @endpoint_options
    @storage_options
    def show(
        thing: Annotated[str, typer.Argument(metavar="THING")],
        storage: Storage = Storage(),
        note: Annotated[str | None, typer.Option("--note")] = None,
        endpoint: Endpoint = Endpoint(),
        output: OutputOption = Output.text,
    ) -> None:
        """Show a thing."""
        calls.append((thing, storage, note, endpoint, output))

    @app.command("other")
    def other() -> None:
        """Keeps ``show`` a subcommand."""

    return app


def test_the_command_gets_the_values_its_options_name() -> None:
    calls.clear()
    args = [
        *("show", "t1", "--api-key", "k", "--url", "http://x", "--note", "n"),
        *("--db", "sqlite:///x.db", "--data-dir", "d", "-o", "json"),
    ]
    done = CliRunner().invoke(_app(), args)
    assert done.exit_code == 0, done.output
    expected = ("t1", Storage(Path("d"), "sqlite:///x.db"), "n", Endpoint("http://x", "k"))
    assert calls == [(*expected, Output.json)]


def test_without_the_options_the_values_name_nothing() -> None:
    calls.clear()
    done = CliRunner().invoke(_app(), ["show", "t2"])
    assert done.exit_code == 0, done.output
    assert calls == [("t2", Storage(), None, Endpoint(), Output.text)]
    assert not Storage().named
    assert Storage(db="sqlite:///x.db").named


def test_help_lists_the_options_where_the_parameters_stand() -> None:
    done = CliRunner().invoke(_app(), ["show", "--help"], env={"COLUMNS": "200"})
    assert done.exit_code == 0, done.output
    wanted = ("--data-dir", "--db", "--note", "--url", "--api-key", "--output")
    options = [
        word
        for line in done.output.splitlines()
        for word in line.replace(",", " ").split()
        if word in wanted
    ]
    assert options == list(wanted)
    assert "Show a thing." in done.output


def test_a_license_key_joins_the_endpoint_before_url_and_api_key() -> None:
    app = typer.Typer()
    got: list[Endpoint] = []

    @app.command("mint")
    @license_endpoint_options
    def mint(endpoint: Endpoint = Endpoint(), output: OutputOption = Output.text) -> None:
        """Mint."""
        got.append(endpoint)

    @app.command("other")
    def other() -> None:
        """Keeps ``mint`` a subcommand."""

    done = CliRunner().invoke(app, ["mint", "--license-key", "TNRK-1", "--url", "http://x"])
    assert done.exit_code == 0, done.output
    assert got == [Endpoint("http://x", None, "TNRK-1")]
    shown = CliRunner().invoke(app, ["mint", "--help"], env={"COLUMNS": "200"}).output
    assert shown.index("--license-key") < shown.index("--url") < shown.index("--api-key")


def test_a_command_without_the_parameter_is_refused() -> None:
    def misnamed(target: Endpoint = Endpoint(), output: OutputOption = Output.text) -> None:
        """No parameter named endpoint."""

    with pytest.raises(TypeError, match="takes no endpoint"):
        endpoint_options(misnamed)
    with pytest.raises(TypeError, match="takes no storage"):
        gather_options(misnamed, "storage", {}, Storage)
