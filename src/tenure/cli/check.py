"""``tenure check LICENSE ENTITLEMENT``: ask the service for a decision."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

import typer

from tenure.cli.client import Endpoint, emit_json, endpoint_options
from tenure.cli.common import Output, OutputOption, out, value_text

EXIT_ALLOWED = 0
EXIT_DENIED = 2


@endpoint_options
def check(
    license: Annotated[
        str, typer.Argument(metavar="LICENSE", help="License serial (TNR-…) or key (TNRK-…).")
    ],
    entitlement: Annotated[
        str,
        typer.Argument(
            metavar="ENTITLEMENT", help="Entitlement key, e.g. feature:export-pdf or seats."
        ),
    ],
    fingerprint: Annotated[
        str | None,
        typer.Option("--fingerprint", help="Machine fingerprint, if the plan uses them."),
    ] = None,
    license_auth: Annotated[
        bool,
        typer.Option(
            "--license-auth",
            help="Authenticate with the license key itself (Authorization: License …) "
            "instead of an API key; LICENSE must then be the key.",
        ),
    ] = False,
    endpoint: Endpoint = Endpoint(),
    output: OutputOption = Output.text,
) -> None:
    """Ask whether LICENSE may use ENTITLEMENT now; print ALLOWED or DENIED.

    Exit status: 0 when allowed, 2 when denied (scripts can branch on it), 1 on an error.
    """
    remote = (replace(endpoint, license_key=license) if license_auth else endpoint).remote()
    body: dict[str, Any] = {"license": license, "entitlement": entitlement}
    if fingerprint is not None:
        body["fingerprint"] = fingerprint
    _, answer = remote.post("/v1/check", body)
    allowed = bool(answer.get("allowed"))
    if output is Output.json:
        emit_json(answer)
    else:
        lines = [
            f"{'ALLOWED' if allowed else 'DENIED'}  {entitlement}",
            f"  reason   {answer.get('reason')}",
            f"  value    {value_text(answer.get('value'))}",
            f"  status   {value_text(answer.get('status'))}",
            f"  expires  {value_text(answer.get('expires_at'))}",
        ]
        if answer.get("serial"):
            lines.insert(1, f"  serial   {answer['serial']}")
        out.print("\n".join(lines), highlight=False, markup=False)
    if not allowed:
        raise typer.Exit(EXIT_DENIED)
