"""``tenure keys list|rotate``: the account's token signing keys (Ed25519) over HTTP."""

from __future__ import annotations

from typing import Any

import typer

from tenure.cli.approvals import print_approval_requested
from tenure.cli.client import Endpoint, emit_answer, emit_listing, endpoint_options, unwrapped
from tenure.cli.common import Output, OutputOption
from tenure.cli.tokens import show_value

app = typer.Typer(
    help="Signing keys of the account: list, rotate (owner or admin keys).\n\n"
    "They sign offline tokens, revocation lists and license files; their public "
    "halves are published at GET /.well-known/jwks.json?account=A. A key's kid is its "
    "RFC 7638 thumbprint.",
    no_args_is_help=True,
)


@app.command("list")
@endpoint_options
def list_command(endpoint: Endpoint = Endpoint(), output: OutputOption = Output.text) -> None:
    """List the account's signing keys, newest first (public parts only).

    The signing key is the one not retired; a retired one stays published until 'published until'.

    Needs an owner or admin key.
    """

    def footer(keys: list[dict[str, Any]]) -> str:
        current = [k.get("kid") for k in keys if k.get("retired_at") is None]
        return f"{len(keys)} key(s); signing key: {show_value(current[0] if current else None)}"

    emit_listing(
        endpoint.remote().get("/v1/keys"),
        "keys",
        output is Output.json,
        unwrapped("kid", "created", "retired", "published until"),
        lambda key: [
            show_value(key.get(field))
            for field in ("kid", "created_at", "retired_at", "publish_until")
        ],
        footer,
    )


@app.command("rotate")
@endpoint_options
def rotate(endpoint: Endpoint = Endpoint(), output: OutputOption = Output.text) -> None:
    """Make a new signing key; print its kid.

    New tokens, revocation lists and license files are signed with it at once.

    The old key stays published while tokens it signed may be valid: nothing issued breaks.

    Needs an owner or admin key, and a second principal's approval (two-person rule):
    this asks for it; `tenure approval approve <id>` by another key rotates.
    """
    status, rotated = endpoint.remote().post("/v1/keys/rotate")
    if status == 202:
        print_approval_requested(rotated, output)
        return
    emit_answer(
        rotated,
        output,
        lambda: [
            f"rotated: the signing key is now {rotated.get('kid')}",
            f"  created  {show_value(rotated.get('created_at'))}",
            "(the previous key stays published until every token it signed has expired)",
        ],
    )
