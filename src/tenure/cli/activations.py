"""``tenure activation create|list|heartbeat|deactivate``: devices on a license's seats.

Over HTTP (docs/offline.md, "Activations"), with an API key or, as the application
would, with ``--license-key`` (``Authorization: License KEY``, that license only).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import quote

import typer

from tenure.cli.client import (
    Endpoint,
    Remote,
    emit_answer,
    emit_listing,
    license_endpoint_options,
    unwrapped,
)
from tenure.cli.common import Output, OutputOption
from tenure.cli.tokens import show_value

app = typer.Typer(
    help="Activations: bind devices to a license's seats, renew leases, free seats.\n\n"
    "A device is named by its fingerprint, any stable string of 1-256 characters the "
    "application derives from the machine; the service stores only its hash. "
    "Activating the same device again gives the same activation. Auth: an API key "
    "(owner, admin, issuer, support or agent) or --license-key.",
    no_args_is_help=True,
)

Serial = Annotated[str, typer.Argument(metavar="SERIAL", help="License serial (TNR-…).")]
ActivationId = Annotated[str, typer.Argument(metavar="ID", help="Activation id (act_…).")]


def _lines(activation: dict[str, Any]) -> list[str]:
    return [
        f"  id           {show_value(activation.get('id'))}",
        f"  serial       {show_value(activation.get('serial'))}",
        f"  mode         {show_value(activation.get('mode'))}",
        f"  status       {show_value(activation.get('status'))}",
        f"  lease until  {show_value(activation.get('lease_expires_at'))}",
    ]


def _print(activation: dict[str, Any], output: Output, headline: str) -> None:
    emit_answer(activation, output, lambda: [headline, *_lines(activation)])


def _path(activation: str) -> str:
    return f"/v1/activations/{quote(activation, safe='')}"


@app.command("create")
@license_endpoint_options
def create(
    serial: Serial,
    fingerprint: Annotated[
        str,
        typer.Option("--fingerprint", metavar="FP", help="The device's fingerprint (1-256 chars)."),
    ],
    endpoint: Endpoint = Endpoint(),
    output: OutputOption = Output.text,
) -> None:
    """Activate a device on license SERIAL; print its id, mode, status and lease.

    A device that already holds its seat gets the same activation (its lease renewed).

    A full license fails with 409 seat_limit.

    A suspended, revoked or expired license fails with 409 license_inactive.
    """
    path = f"/v1/licenses/{quote(serial, safe='')}/activations"
    status, activation = endpoint.remote().post(path, {"fingerprint": fingerprint})
    verb = "activated" if status == 201 else "already active"
    _print(activation, output, f"{verb}: {activation.get('id')}")


@app.command("list")
@license_endpoint_options
def list_command(
    serial: Serial,
    endpoint: Endpoint = Endpoint(),
    output: OutputOption = Output.text,
) -> None:
    """List the activations of license SERIAL, deactivated ones too.

    Auth: an API key that may read licenses, or --license-key.
    """

    def footer(activations: list[dict[str, Any]]) -> str:
        active = sum(1 for a in activations if a.get("status") == "active")
        return f"{len(activations)} activation(s), {active} holding a seat"

    emit_listing(
        endpoint.remote().get(f"/v1/licenses/{quote(serial, safe='')}/activations"),
        "activations",
        output is Output.json,
        unwrapped("id", "mode", "status", "lease until", "fingerprint hash"),
        lambda activation: [
            show_value(activation.get(field))
            for field in ("id", "mode", "status", "lease_expires_at", "fingerprint_hash")
        ],
        footer,
    )


def _activation_change(
    name: str, doc: str, verb: str, call: Callable[[Remote, str], dict[str, Any]]
) -> None:
    """Register ``tenure activation NAME ID``: one call on the activation's path."""

    def command(
        activation: ActivationId,
        endpoint: Endpoint = Endpoint(),
        output: OutputOption = Output.text,
    ) -> None:
        answer = call(endpoint.remote(), _path(activation))
        _print(answer, output, f"{verb}: {answer.get('id')}")

    command.__doc__ = doc
    app.command(name)(license_endpoint_options(command))


_activation_change(
    "heartbeat",
    """Renew the floating lease of activation ID (node-locked ones answer unchanged).

    Fails with 409 once deactivated, or when the license is no longer usable.

    Fails with 409 seat_limit when the lease ended and its seat was taken meanwhile.
    """,
    "renewed",
    lambda remote, path: remote.post(f"{path}/heartbeat")[1],
)
_activation_change(
    "deactivate",
    "Deactivate activation ID and free its seat (again: unchanged).",
    "deactivated",
    lambda remote, path: remote.delete(path),
)
