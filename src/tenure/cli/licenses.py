"""``tenure license …``: the license lifecycle over HTTP."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from tenure.cli.approvals import print_approval_requested
from tenure.cli.client import (
    Endpoint,
    IdempotencyKeyOption,
    emit_answer,
    emit_listing,
    endpoint_options,
    unwrapped,
)
from tenure.cli.common import Output, OutputOption, value_text
from tenure.errors import InvalidInput

app = typer.Typer(help="License lifecycle: issue, inspect, change.", no_args_is_help=True)

PAGE_MAX = 200

Serial = Annotated[str, typer.Argument(metavar="SERIAL", help="License serial (TNR-…).")]
ReasonOption = Annotated[
    str | None, typer.Option("--reason", help="Why (recorded in the ledger event).")
]
RequiredReasonOption = Annotated[
    str | None, typer.Option("--reason", help="Why (required; recorded in the ledger event).")
]
PlanVersionOption = Annotated[
    int | None, typer.Option("--plan-version", help="Plan version (default: the latest).", min=1)
]


def _require_reason(reason: str | None, action: str) -> str:
    if reason is None or not reason.strip():
        raise InvalidInput(f"--reason is required to {action} a license", field="reason")
    return reason


def parse_value(text: str) -> bool | int | None:
    """An override value: ``true``, ``false``, ``null`` or a non-negative integer."""
    lowered = text.strip().lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    if lowered in ("null", "none"):
        return None
    try:
        return int(lowered)
    except ValueError:
        raise InvalidInput(
            f"--value must be true, false, null or an integer, not {text!r}", field="value"
        ) from None


def _license_lines(view: dict[str, Any]) -> list[str]:
    skip = {"serial", "key", "created"}
    lines = [f"license {view.get('serial')}"]
    for name, value in view.items():
        if name in skip:
            continue
        if isinstance(value, dict):
            value = ", ".join(f"{k}={value_text(v)}" for k, v in value.items()) or "-"
        elif isinstance(value, list):
            value = ", ".join(value_text(v) for v in value) or "-"
        lines.append(f"  {name:<14} {value_text(value)}")
    return lines


def _print_license(view: dict[str, Any], output: Output, headline: str | None = None) -> None:
    heading = [] if headline is None else [headline]
    emit_answer(view, output, lambda: [*heading, *_license_lines(view)])


def _act(
    endpoint: Endpoint,
    serial: str,
    action: str,
    body: dict[str, Any],
    idempotency_key: str | None,
    output: Output,
    done: str,
) -> None:
    clean = {k: v for k, v in body.items() if v is not None or k == "value"}
    status, view = endpoint.remote().post(
        f"/v1/licenses/{serial}/{action}", clean, idempotency_key=idempotency_key
    )
    if status == 202:  # a mass revocation: the two-person rule
        print_approval_requested(view, output)
        return
    _print_license(view, output, f"{done}: {serial} is now {view.get('status')}")


# ---------------------------------------------------------------- issue and reads


@app.command("issue")
@endpoint_options
def issue(
    product: Annotated[str, typer.Option("--product", help="Product code.")],
    plan: Annotated[str, typer.Option("--plan", help="Plan code.")],
    customer: Annotated[str, typer.Option("--customer", help="Customer id (cus_…).")],
    order_ref: Annotated[
        str,
        typer.Option(
            "--order-ref", help="Your order reference; the same order again gives the same license."
        ),
    ],
    plan_version: PlanVersionOption = None,
    idempotency_key: IdempotencyKeyOption = None,
    endpoint: Endpoint = Endpoint(),
    output: OutputOption = Output.text,
) -> None:
    """Issue a license and print its serial and KEY (the key is shown now: keep it)."""
    body: dict[str, Any] = {
        "product": product,
        "plan": plan,
        "customer": customer,
        "order_ref": order_ref,
    }
    if plan_version is not None:
        body["plan_version"] = plan_version
    status, view = endpoint.remote().post("/v1/licenses", body, idempotency_key=idempotency_key)
    verb = "issued" if status == 201 else "already issued for this order"
    emit_answer(
        view,
        output,
        lambda: [
            f"{verb}: {view.get('serial')}",
            f"KEY: {view.get('key')}",
            "(the license key is shown now; give it to the customer's application)",
            *_license_lines(view)[1:],
        ],
    )


@app.command("show")
@endpoint_options
def show(
    serial: Serial, endpoint: Endpoint = Endpoint(), output: OutputOption = Output.text
) -> None:
    """Show one license (never its key)."""
    _print_license(endpoint.remote().get(f"/v1/licenses/{serial}"), output)


@app.command("list")
@endpoint_options
def list_command(
    customer: Annotated[
        str | None, typer.Option("--customer", help="Only this customer's.")
    ] = None,
    status: Annotated[
        str | None, typer.Option("--status", help="Only with this status (active, suspended, …).")
    ] = None,
    product: Annotated[str | None, typer.Option("--product", help="Only of this product.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="Page size.", min=1, max=PAGE_MAX)] = 50,
    cursor: Annotated[
        str | None, typer.Option("--cursor", help="Continue after a previous page.")
    ] = None,
    all_pages: Annotated[
        bool, typer.Option("--all", help="Follow the cursor through every page.")
    ] = False,
    endpoint: Endpoint = Endpoint(),
    output: OutputOption = Output.text,
) -> None:
    """List licenses by serial, filtered; one page unless --all."""
    remote = endpoint.remote()
    licenses: list[dict[str, Any]] = []
    next_cursor = cursor
    while True:
        page = remote.get(
            "/v1/licenses",
            {
                "customer": customer,
                "status": status,
                "product": product,
                "cursor": next_cursor,
                "limit": limit,
            },
        )
        licenses.extend(page.get("licenses", []))
        next_cursor = page.get("next_cursor")
        if not all_pages or not next_cursor:
            break

    def footer(found: list[dict[str, Any]]) -> str:
        more = f"; more: --cursor {next_cursor} (or --all)" if next_cursor else ""
        return f"{len(found)} license(s){more}"

    emit_listing(
        {"licenses": licenses, "next_cursor": next_cursor},
        "licenses",
        output is Output.json,
        [*unwrapped("serial", "customer"), "product", "plan", "status", "expires_at"],
        lambda lic: (
            value_text(lic.get("serial")),
            value_text(lic.get("customer")),
            value_text(lic.get("product")),
            f"{lic.get('plan')} v{lic.get('plan_version')}",
            value_text(lic.get("status")),
            value_text(lic.get("expires_at")),
        ),
        footer,
    )


@app.command("history")
@endpoint_options
def history(
    serial: Serial, endpoint: Endpoint = Endpoint(), output: OutputOption = Output.text
) -> None:
    """The license's ledger events, in order."""

    def row(item: dict[str, Any]) -> tuple[str, ...]:
        event = item.get("event", {})
        actor = event.get("actor") or {}
        return (
            str(item.get("seq")),
            value_text(event.get("type")),
            value_text(event.get("time")),
            f"{actor.get('role', '-')}:{actor.get('id', '-')}",
            value_text(event.get("reason")),
        )

    emit_listing(
        endpoint.remote().get(f"/v1/licenses/{serial}/history"),
        "events",
        output is Output.json,
        ["seq", *unwrapped("type"), "time", "actor", "reason"],
        row,
    )


# ---------------------------------------------------------------- changes


@app.command("renew")
@endpoint_options
def renew(
    serial: Serial,
    duration: Annotated[
        str | None, typer.Option("--duration", help="Extend by this much (default: the plan's).")
    ] = None,
    reason: ReasonOption = None,
    idempotency_key: IdempotencyKeyOption = None,
    endpoint: Endpoint = Endpoint(),
    output: OutputOption = Output.text,
) -> None:
    """Extend the license's expiry."""
    body = {"duration": duration, "reason": reason}
    _act(endpoint, serial, "renew", body, idempotency_key, output, "renewed")


def _status_change(action: str, done: str, doc: str, *, reason_required: bool) -> None:
    """Register ``tenure license ACTION``: a status change that takes only a reason."""

    def command(
        serial: Serial,
        reason: ReasonOption = None,
        idempotency_key: IdempotencyKeyOption = None,
        endpoint: Endpoint = Endpoint(),
        output: OutputOption = Output.text,
    ) -> None:
        body = {"reason": _require_reason(reason, action) if reason_required else reason}
        _act(endpoint, serial, action, body, idempotency_key, output, done)

    if reason_required:  # the same option, its help saying it is required
        command.__annotations__["reason"] = RequiredReasonOption
    command.__doc__ = doc
    app.command(action)(endpoint_options(command))


_status_change(
    "suspend",
    "suspended",
    "Suspend an active license (--reason required); checks answer DENIED until reinstated.",
    reason_required=True,
)
_status_change("reinstate", "reinstated", "Reinstate a suspended license.", reason_required=False)
_status_change(
    "revoke",
    "revoked",
    "Revoke a license for good (--reason required; terminal).",
    reason_required=True,
)


@app.command("change-plan")
@endpoint_options
def change_plan(
    serial: Serial,
    plan: Annotated[str, typer.Option("--plan", help="The new plan code.")],
    plan_version: PlanVersionOption = None,
    reason: ReasonOption = None,
    idempotency_key: IdempotencyKeyOption = None,
    endpoint: Endpoint = Endpoint(),
    output: OutputOption = Output.text,
) -> None:
    """Move the license to another plan (or another version of its plan)."""
    body = {"plan": plan, "plan_version": plan_version, "reason": reason}
    _act(endpoint, serial, "change-plan", body, idempotency_key, output, "plan changed")


@app.command("override")
@endpoint_options
def override(
    serial: Serial,
    entitlement: Annotated[
        str, typer.Option("--entitlement", help="Entitlement key, e.g. seats or feature:scripting.")
    ],
    value: Annotated[
        str,
        typer.Option(
            "--value",
            help="true/false (feature:, module:), an integer (seats, quota:), or null to "
            "remove the override.",
        ),
    ],
    reason: RequiredReasonOption = None,
    idempotency_key: IdempotencyKeyOption = None,
    endpoint: Endpoint = Endpoint(),
    output: OutputOption = Output.text,
) -> None:
    """Override one entitlement of this license (--reason required)."""
    body = {
        "entitlement": entitlement,
        "value": parse_value(value),
        "reason": _require_reason(reason, "override an entitlement of"),
    }
    _act(endpoint, serial, "override", body, idempotency_key, output, "overridden")


@app.command("transfer")
@endpoint_options
def transfer(
    serial: Serial,
    customer: Annotated[str, typer.Option("--customer", help="The new customer id (cus_…).")],
    reason: ReasonOption = None,
    idempotency_key: IdempotencyKeyOption = None,
    endpoint: Endpoint = Endpoint(),
    output: OutputOption = Output.text,
) -> None:
    """Transfer the license to another customer."""
    body = {"customer": customer, "reason": reason}
    _act(endpoint, serial, "transfer", body, idempotency_key, output, "transferred")
