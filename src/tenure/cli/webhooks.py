"""``tenure webhook …``, ``tenure notice list`` and ``tenure alert list`` over HTTP
(docs/webhooks.md)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any

import typer

from tenure.cli.client import (
    ApiKeyOption,
    Endpoint,
    Remote,
    UrlOption,
    emit_answer,
    emit_listing,
    endpoint_options,
)
from tenure.cli.common import Output, OutputOption

app = typer.Typer(
    help="Webhook subscriptions: add, list, remove, and their deliveries.",
    no_args_is_help=True,
)
notice_app = typer.Typer(
    help="Lifecycle notices (licenses expiring, in grace).", no_args_is_help=True
)
alert_app = typer.Typer(
    help="Anomaly alerts (event rates far above baseline).", no_args_is_help=True
)

WebhookArg = Annotated[str, typer.Argument(metavar="WEBHOOK", help="Webhook id (whk_…).")]
LimitOption = Annotated[
    int, typer.Option("--limit", min=1, max=1000, help="How many, newest first.")
]


@app.command("add")
def add(
    url: Annotated[str, typer.Argument(metavar="URL", help="Where to POST events (http/https).")],
    event: Annotated[
        list[str] | None,
        typer.Option(
            "--event",
            help="Event types: *, a prefix such as license.*, or a type (repeatable; default *).",
        ),
    ] = None,
    description: Annotated[str, typer.Option("--description", help="A note for people.")] = "",
    api_url: UrlOption = None,
    api_key: ApiKeyOption = None,
    output: OutputOption = Output.text,
) -> None:
    """Subscribe URL to events; prints the signing secret, shown only this once."""
    body = {"url": url, "events": event or ["*"], "description": description}
    _, made = Remote(api_url, api_key).post("/v1/webhooks", body)
    emit_answer(
        made,
        output,
        lambda: [
            f"webhook: {made['id']}",
            f"url:     {made['url']}",
            f"events:  {', '.join(made['events'])}",
            f"secret:  {made['secret']}",
            "The secret is shown only now: store it where the receiver verifies signatures.",
        ],
    )


@app.command("list")
@endpoint_options
def list_webhooks(endpoint: Endpoint = Endpoint(), output: OutputOption = Output.text) -> None:
    """List the account's webhook subscriptions (never their secrets)."""
    emit_listing(
        endpoint.remote().get("/v1/webhooks"),
        "webhooks",
        output is Output.json,
        ("webhook", "url", "events", "enabled", "created at"),
        lambda h: (
            h["id"],
            h["url"],
            ", ".join(h["events"]),
            "yes" if h["enabled"] else "no",
            h["created_at"],
        ),
    )


@app.command("remove")
@endpoint_options
def remove(
    webhook: WebhookArg, endpoint: Endpoint = Endpoint(), output: OutputOption = Output.text
) -> None:
    """Remove a subscription and its deliveries."""
    answer = endpoint.remote().delete(f"/v1/webhooks/{webhook}")
    emit_answer(answer, output, lambda: [f"{webhook} removed"])


def _set_enabled(name: str, enabled: bool, doc: str) -> None:
    """Register ``tenure webhook NAME``: turn a subscription's deliveries on or off."""

    def command(
        webhook: WebhookArg,
        endpoint: Endpoint = Endpoint(),
        output: OutputOption = Output.text,
    ) -> None:
        answer = (
            endpoint.remote()
            .request("PATCH", f"/v1/webhooks/{webhook}", json={"enabled": enabled})
            .json()
        )
        emit_answer(
            answer,
            output,
            lambda: [f"{webhook} {'enabled' if answer['enabled'] else 'disabled'}"],
        )

    command.__doc__ = doc
    app.command(name)(endpoint_options(command))


_set_enabled("enable", True, "Resume a disabled subscription (its waiting deliveries are sent).")
_set_enabled("disable", False, "Pause a subscription: no new events, pending deliveries wait.")


@app.command("deliveries")
@endpoint_options
def deliveries(
    webhook: WebhookArg,
    status: Annotated[
        str | None, typer.Option("--status", help="Only pending, delivered or failed ones.")
    ] = None,
    retry: Annotated[
        str | None, typer.Option("--retry", help="Send this delivery (msg_…) again now.")
    ] = None,
    limit: LimitOption = 100,
    endpoint: Endpoint = Endpoint(),
    output: OutputOption = Output.text,
) -> None:
    """List a subscription's deliveries with their attempts (or retry one)."""
    remote = endpoint.remote()
    if retry is not None:
        _, answer = remote.post(f"/v1/webhooks/{webhook}/deliveries/{retry}/retry")
        emit_answer(answer, output, lambda: [f"{retry} is {answer['status']} again"])
        return
    listing = remote.get(
        f"/v1/webhooks/{webhook}/deliveries", params={"status": status, "limit": limit}
    )
    emit_listing(
        listing,
        "deliveries",
        output is Output.json,
        ("delivery", "event", "status", "attempts", "last", "next attempt", "created at"),
        lambda d: (
            d["id"],
            d["event_type"],
            d["status"],
            str(d["attempts"]),
            str(d["last_status_code"] or d["last_error"] or ""),
            d["next_attempt_at"] or "",
            d["created_at"],
        ),
    )


def _feed(
    group: typer.Typer,
    path: str,
    help: str,
    columns: Sequence[str],
    row: Callable[[Any], Sequence[str]],
) -> None:
    """``tenure <group> list``: the newest ``--limit`` items of ``path`` (a listing
    whose member is the path's last part)."""
    key = path.rsplit("/", 1)[1]

    def listing(
        limit: LimitOption = 50,
        endpoint: Endpoint = Endpoint(),
        output: OutputOption = Output.text,
    ) -> None:
        found = endpoint.remote().get(path, params={"limit": limit})
        emit_listing(found, key, output is Output.json, columns, row)

    group.command("list", help=help)(endpoint_options(listing))


_feed(
    notice_app,
    "/v1/notices",
    "List lifecycle notices, newest first.",
    ("notice", "kind", "serial", "expires at", "lead (days)", "created at"),
    lambda n: (
        n["id"],
        n["kind"],
        n["serial"],
        n["expires_at"],
        "" if n["lead"] is None else str(n["lead"]),
        n["created_at"],
    ),
)
_feed(
    alert_app,
    "/v1/alerts",
    "List anomaly alerts, newest first (open ones have no cleared time).",
    ("alert", "kind", "observed", "threshold", "baseline", "window end", "cleared at"),
    lambda a: (
        a["id"],
        a["kind"],
        str(a["observed"]),
        f"{a['threshold']:g}",
        f"{a['baseline']:g}",
        a["window_end"],
        a["cleared_at"] or "open",
    ),
)
