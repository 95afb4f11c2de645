"""The HTTP-client commands (``tenure catalog|customer|license|check``) against a real
server, driven as an operator would: the ``tenure`` executable in a subprocess with
``TENURE_URL`` and ``TENURE_API_KEY`` in its environment.

Runs its own seeded server: the session ``server`` of conftest must keep exactly the
seeded events.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.remote import assert_one_line_error, ok_json, tenure
from support.server import Server, free_port, seeded_server

CATALOG = Path(__file__).resolve().parents[2] / "examples" / "catalog.yaml"


@pytest.fixture(scope="module")
def cli_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with seeded_server(tmp_path_factory, "cli-remote") as running:
        yield running


def test_catalog_apply_dry_run_then_real_then_nothing(cli_server: Server) -> None:
    dry = ok_json(
        tenure(cli_server, "catalog", "apply", "-f", str(CATALOG), "--dry-run", "-o", "json")
    )
    # The example catalog takes entitlements from plans the seed licensed: a request
    # of one person's key that a second person's key approves (the two-person rule).
    first, admin = (
        ok_json(
            tenure(cli_server, "apikey", "create", "--role", "admin", "--name", name, "-o", "json")
        )["key"]
        for name in ("first", "second")
    )
    apply = ("catalog", "apply", "-f", str(CATALOG), "-o", "json")
    approval = ok_json(tenure(cli_server, *apply, key=first))["approval"]["approval"]
    own = tenure(cli_server, "approval", "approve", approval, "--reason", "mine", key=first)
    assert own.returncode != 0, "the requester approved its own request"
    done = ok_json(
        tenure(
            cli_server, "approval", "approve", approval, "--reason", "ok", "-o", "json", key=admin
        )
    )
    assert done["approval"]["status"] == "executed", done
    assert dry["dry_run"] is True
    again = ok_json(tenure(cli_server, "catalog", "apply", "-f", str(CATALOG), "-o", "json"))
    assert again["changes"] == 0
    text = tenure(cli_server, "catalog", "apply", "-f", str(CATALOG), "--dry-run")
    assert text.returncode == 0, text.stderr
    assert "studio" in text.stdout
    assert "0 change(s)" in text.stdout


def test_license_lifecycle_through_the_cli(cli_server: Server) -> None:
    assert tenure(cli_server, "catalog", "apply", "-f", str(CATALOG)).returncode == 0
    customer = ok_json(
        tenure(
            cli_server,
            "customer",
            "create",
            "--name",
            "Acme GmbH",
            "--email",
            "it@acme.example",
            "-o",
            "json",
        )
    )
    customer_id = customer["id"]
    shown = ok_json(tenure(cli_server, "customer", "show", customer_id, "-o", "json"))
    assert shown["name"] == "Acme GmbH"

    order = f"ORD-{uuid.uuid4().hex[:10]}"
    issue = [
        "license",
        "issue",
        "--product",
        "studio",
        "--plan",
        "studio-basic",
        "--customer",
        customer_id,
        "--order-ref",
        order,
    ]
    issued = ok_json(tenure(cli_server, *issue, "-o", "json"))
    serial, key = issued["serial"], issued["key"]
    assert serial.startswith("TNR-")
    assert key.startswith("TNRK-")
    as_text = tenure(cli_server, *issue)  # the same order again: same serial and key
    assert as_text.returncode == 0, as_text.stderr
    assert serial in as_text.stdout
    assert f"KEY: {key}" in as_text.stdout

    allowed = tenure(cli_server, "check", serial, "feature:export-pdf")
    assert allowed.returncode == 0, allowed.stderr
    assert allowed.stdout.startswith("ALLOWED")
    as_app = tenure(cli_server, "check", key, "feature:export-pdf", "--license-auth", key="")
    assert as_app.returncode == 0, as_app.stderr

    no_reason = tenure(cli_server, "license", "suspend", serial)
    assert_one_line_error(no_reason, "--reason")
    suspended = ok_json(
        tenure(cli_server, "license", "suspend", serial, "--reason", "invoice unpaid", "-o", "json")
    )
    assert suspended["status"] == "suspended"

    denied = tenure(cli_server, "check", serial, "feature:export-pdf", "-o", "json")
    assert denied.returncode == 2, denied.stderr
    answer = json.loads(denied.stdout)
    assert answer["allowed"] is False
    assert answer["reason"] == "suspended"
    denied_text = tenure(cli_server, "check", serial, "feature:export-pdf")
    assert denied_text.returncode == 2
    assert denied_text.stdout.startswith("DENIED")
    assert "suspended" in denied_text.stdout
    as_app_denied = tenure(cli_server, "check", key, "feature:export-pdf", "--license-auth", key="")
    assert as_app_denied.returncode == 2, as_app_denied.stderr

    listed = ok_json(tenure(cli_server, "license", "list", "--all", "--limit", "7", "-o", "json"))
    assert serial in [lic["serial"] for lic in listed["licenses"]]
    assert listed["next_cursor"] is None
    mine = tenure(cli_server, "license", "list", "--customer", customer_id, "--status", "suspended")
    assert mine.returncode == 0
    assert serial in mine.stdout

    history = ok_json(tenure(cli_server, "license", "history", serial, "-o", "json"))
    types = [e["event"]["type"] for e in history["events"]]
    assert types == ["license.issued", "license.suspended"]
    table = tenure(cli_server, "license", "history", serial)
    assert table.returncode == 0
    assert "license.suspended" in table.stdout

    reinstated = ok_json(tenure(cli_server, "license", "reinstate", serial, "-o", "json"))
    assert reinstated["status"] == "active"
    overridden = tenure(
        cli_server,
        "license",
        "override",
        serial,
        "--entitlement",
        "seats",
        "--value",
        "4",
        "--reason",
        "pilot",
    )
    assert overridden.returncode == 0, overridden.stderr
    bad_value = tenure(
        cli_server,
        "license",
        "override",
        serial,
        "--entitlement",
        "seats",
        "--value",
        "lots",
        "--reason",
        "pilot",
    )
    assert_one_line_error(bad_value, "--value")


def test_server_errors_are_one_line(cli_server: Server) -> None:
    unknown = tenure(cli_server, "license", "show", "TNR-AAAAA-AAAAA-AAAAA-AAAAA")
    assert_one_line_error(unknown, "404 not_found")
    bad_key = tenure(cli_server, "license", "list", key="tnr_not_a_real_key")
    assert_one_line_error(bad_key, "401 unauthenticated")
    bad_field = tenure(cli_server, "customer", "create", "--name", "X", "--email", "not-an-email")
    assert_one_line_error(bad_field, "400 invalid_input", "(field: email)")


def test_unreachable_url_is_one_line(cli_server: Server) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = tenure(cli_server, "license", "list", url=url)
    assert_one_line_error(done, f"cannot reach {url}")
