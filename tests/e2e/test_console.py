"""The web console in a real browser: Debian's Chromium driven by Playwright against a
real ``tenure serve`` on a seeded store (docs/console.md).

Screenshots of the overview, the license list and a license detail with its proofs
verified are saved in the test's tmp dir, and copied to ``$TENURE_SCREENSHOTS_DIR``
when it is set (``docs/screenshots/`` for the README).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.api import apply_example_catalog, issue_license
from support.server import Server, running_server, seed_data_dir

from .chromium import launched_chromium

VIEWPORT = {"width": 1440, "height": 900}
PROOF_WAIT_SECONDS = 15.0
"""A new event is in a signed checkpoint within ~1 s (TENURE_CHECKPOINT_INTERVAL_SECONDS)."""


@pytest.fixture(scope="module")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A seeded server with a site, shipping, snapshots and restore drills, and one
    installation reporting a device the ledger does not know (drift)."""
    root = tmp_path_factory.mktemp("console")
    seed_data_dir(root / "data")
    (root / "site").mkdir()
    with running_server(
        root / "data",
        tmp_path_factory.mktemp("console-logs"),
        TENURE_SITES=(root / "site").as_uri(),
        TENURE_SNAPSHOT_EVERY_EVENTS="100",
        TENURE_DRILL_INTERVAL_MINUTES="0.02",
        TENURE_OPS_FLUSH_SECONDS="0.5",
    ) as running:
        with running.client(running.owner_key()) as owner:
            apply_example_catalog(owner)
            _report_an_unknown_device(owner)
        yield running


def _report_an_unknown_device(owner: httpx.Client) -> None:
    """An agent reports a device of a real license that was never activated; a
    reconciliation pass then holds one ``unknown_device`` finding."""
    agent = owner.post("/v1/apikeys", json={"role": "agent", "name": "plant-7"}).json()["key"]
    serial = owner.get("/v1/licenses", params={"limit": 1}).json()["licenses"][0]["serial"]
    report = {
        "product": "studio",
        "product_version": "2.1.0",
        "sdk_version": "0.2.0",
        "activations": [{"license": serial, "fingerprint_hash": "ab" * 32, "entitlements": []}],
    }
    posted = owner.post(
        "/v1/deployments/plant-7/reports",
        json=report,
        headers={"Authorization": f"Bearer {agent}"},
    )
    assert posted.status_code == 201, posted.text
    reconciled = owner.post("/v1/drift/reconcile")
    assert reconciled.status_code == 200, reconciled.text


def _wait_for_a_drill(server: Server) -> dict[str, Any]:
    """The first scheduled restore drill's report (they run every ~1.2 s here)."""
    deadline = time.monotonic() + PROOF_WAIT_SECONDS * 2
    with server.client(server.owner_key()) as owner:
        while time.monotonic() < deadline:
            latest = owner.get("/v1/drills/latest")
            if latest.status_code == 200:
                report: dict[str, Any] = latest.json()
                return report
            time.sleep(0.3)
    pytest.fail("no restore drill ran")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launched_chromium() as launched:
        yield launched


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=VIEWPORT)
    opened = context.new_page()
    try:
        yield opened
    finally:
        context.close()


def _made_key(server: Server, role: str) -> dict[str, Any]:
    """A new API key of ``role``: ``{"id", "key", …}``."""
    with server.client(server.owner_key()) as owner:
        made = owner.post("/v1/apikeys", json={"role": role, "name": f"console {role}"})
    assert made.status_code == 201, made.text
    body: dict[str, Any] = made.json()
    return body


def _key(server: Server, role: str) -> str:
    key: str = _made_key(server, role)["key"]
    return key


def _sign_in(page: Any, server: Server, key: str) -> Any:
    page.goto(f"{server.url}/console/signin")
    page.fill("#api_key", key)
    with page.expect_navigation() as navigation:
        page.click("button[type=submit]")
    return navigation.value


def _screenshot(page: Any, tmp_path: Path, name: str, full_page: bool = False) -> None:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    wanted = os.environ.get("TENURE_SCREENSHOTS_DIR")
    if wanted:
        Path(wanted).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(wanted) / f"console-{name}.png")


def _check(server: Server, serial: str, entitlement: str) -> dict[str, Any]:
    with server.client(server.owner_key()) as owner:
        answer = owner.post("/v1/check", json={"license": serial, "entitlement": entitlement})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _wait_for_verified_proof(page: Any, event_type: str) -> Any:
    """Reload the license page until the newest ``event_type`` event is covered by a
    signed checkpoint and the browser verified its proof; the status element."""
    deadline = time.monotonic() + PROOF_WAIT_SECONDS
    while True:
        status = page.locator(f'tr[data-event-type="{event_type}"] [data-proof-status]').last
        page.wait_for_function(
            "el => el.dataset.proofStatus !== 'pending' || el.textContent.includes('awaiting')",
            arg=status.element_handle(),
        )
        if status.get_attribute("data-proof-status") != "pending":
            return status
        if time.monotonic() > deadline:
            pytest.fail(f"the {event_type} event was not in a signed checkpoint in time")
        time.sleep(0.5)
        page.reload()


def test_owner_suspends_a_license_and_sees_the_event_verified_in_the_browser(
    console_server: Server, page: Any, tmp_path: Path
) -> None:
    server = console_server
    with server.client(server.owner_key()) as owner:
        serial = issue_license(owner)["serial"]
    for entitlement in ("feature:export-pdf", "feature:cloud-sync", "feature:scripting"):
        _check(server, serial, entitlement)  # decisions for the overview to count
    assert _wait_for_a_drill(server)["passed"] is True

    landed = _sign_in(page, server, server.owner_key())
    assert landed.status == 200
    assert page.url.endswith("/console/overview")
    assert page.locator("[data-role]").inner_text() == "owner"
    assert page.locator('[data-license-count="active"] .stat-value').inner_text() != "0"
    assert page.locator("[data-decisions-allowed]").inner_text() != "0"
    overview = page.content()
    assert "passed" in overview  # the last restore drill
    assert "unknown device" in overview  # the drift panel, by kind
    _screenshot(page, tmp_path, "overview", full_page=True)

    page.click('[data-nav="licenses"]')
    assert page.locator("[data-licenses] tbody tr").count() > 1
    _screenshot(page, tmp_path, "licenses")
    page.fill("[data-search-serial]", serial)
    page.click("[data-search-submit]")
    assert page.locator("[data-licenses] tbody tr").count() == 1
    page.click(f'tr[data-serial="{serial}"] a')
    assert page.locator("[data-license-status]").get_attribute("data-license-status") == "active"

    assert _check(server, serial, "feature:cloud-sync")["allowed"] is True

    page.fill('[data-action="suspend"] input[name=reason]', "chargeback on the card")
    with page.expect_navigation():
        page.click('[data-action="suspend"] button')
    assert page.locator("[data-done]").get_attribute("data-done") == "suspend"
    assert page.locator("[data-license-status]").get_attribute("data-license-status") == "suspended"

    denied = _check(server, serial, "feature:cloud-sync")
    assert (denied["allowed"], denied["reason"]) == (False, "suspended")

    status = _wait_for_verified_proof(page, "license.suspended")
    assert status.get_attribute("data-proof-status") == "verified"
    assert status.inner_text() == "verified"
    row = page.locator('tr[data-event-type="license.suspended"]').last
    assert "chargeback on the card" in row.inner_text()
    every = page.locator("[data-proof-status]")
    assert {every.nth(i).get_attribute("data-proof-status") for i in range(every.count())} == {
        "verified"
    }
    signature = page.locator("[data-signature-status]")
    page.wait_for_function(
        "el => el.dataset.signatureStatus !== undefined", arg=signature.element_handle()
    )
    assert signature.get_attribute("data-signature-status") == "verified"  # Chromium has Ed25519
    # The rows the effective entitlements come from, proven under the signed state root.
    state = page.locator("[data-state-status]")
    page.wait_for_function("el => el.dataset.stateStatus !== 'pending'", arg=state.element_handle())
    assert state.get_attribute("data-state-status") == "verified", state.inner_text()
    _screenshot(page, tmp_path, "license-detail", full_page=True)


def test_a_wrong_key_is_refused_with_a_401_page(console_server: Server, page: Any) -> None:
    refused = _sign_in(page, console_server, "tnr_not_a_real_key")
    assert refused.status == 401
    assert "not valid" in page.locator("[data-signin-error]").inner_text()
    assert "Traceback" not in page.content()
    # No session: the only cookie is the sign-in form's own (its CSRF token's nonce).
    assert [cookie["name"] for cookie in page.context.cookies()] == ["tenure_signin"]


def test_pages_need_a_session(console_server: Server) -> None:
    with httpx.Client(base_url=console_server.url, timeout=10) as anonymous:
        page = anonymous.get("/console/licenses")
        action = anonymous.post("/console/licenses/X/suspend", data={"reason": "r"})
    assert (page.status_code, page.headers["location"]) == (303, "/console/signin")
    assert action.status_code == 401


def test_support_may_suspend_but_not_revoke(console_server: Server, page: Any) -> None:
    with console_server.client(console_server.owner_key()) as owner:
        serial = issue_license(owner)["serial"]
    _sign_in(page, console_server, _key(console_server, "support"))
    page.goto(f"{console_server.url}/console/licenses/{serial}")
    assert page.locator('[data-action="suspend"]').count() == 1
    assert page.locator('[data-action="revoke"]').count() == 0
    assert page.locator('[data-nav="audit"]').count() == 0
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    refused = page.request.post(
        f"{console_server.url}/console/licenses/{serial}/revoke",
        form={"csrf": csrf, "reason": "not mine to revoke"},
    )
    assert refused.status == 403


def test_an_auditor_cannot_suspend(console_server: Server, page: Any) -> None:
    with console_server.client(console_server.owner_key()) as owner:
        serial = issue_license(owner)["serial"]
    _sign_in(page, console_server, _key(console_server, "auditor"))
    page.goto(f"{console_server.url}/console/licenses/{serial}")
    assert page.locator("[data-action]").count() == 0
    assert page.locator('[data-nav="audit"]').count() == 1
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    refused = page.request.post(
        f"{console_server.url}/console/licenses/{serial}/suspend",
        form={"csrf": csrf, "reason": "auditors only look"},
    )
    assert refused.status == 403
    assert _check(console_server, serial, "feature:cloud-sync")["allowed"] is True


def test_a_post_without_the_session_csrf_token_is_refused(
    console_server: Server, page: Any
) -> None:
    with console_server.client(console_server.owner_key()) as owner:
        serial = issue_license(owner)["serial"]
    _sign_in(page, console_server, console_server.owner_key())
    forged = page.request.post(
        f"{console_server.url}/console/licenses/{serial}/suspend",
        form={"csrf": "0" * 64, "reason": "forged"},
    )
    assert forged.status == 403
    assert _check(console_server, serial, "feature:cloud-sync")["allowed"] is True


def test_a_revoked_key_ends_its_session_at_once(console_server: Server, page: Any) -> None:
    made = _made_key(console_server, "support")
    _sign_in(page, console_server, made["key"])
    assert page.url.endswith("/console/overview")
    with console_server.client(console_server.owner_key()) as owner:
        assert owner.delete(f"/v1/apikeys/{made['id']}").status_code == 200
    page.goto(f"{console_server.url}/console/overview")
    assert page.url.endswith("/console/signin")


def test_every_page_of_the_nav_opens_for_the_owner(console_server: Server, page: Any) -> None:
    _sign_in(page, console_server, console_server.owner_key())
    links = page.locator("[data-nav]")
    paths = [links.nth(i).get_attribute("data-nav") for i in range(links.count())]
    assert paths == [
        "overview",
        "licenses",
        "customers",
        "catalog",
        "approvals",
        "drift",
        "notices",
        "audit",
    ]
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    for path in paths:
        response = page.goto(f"{console_server.url}/console/{path}")
        assert response.status == 200, path
        assert "content-security-policy" in response.headers
        assert response.headers["cache-control"] == "no-store"
    assert errors == []


def test_customers_show_their_sealed_names_opened(console_server: Server, page: Any) -> None:
    with console_server.client(console_server.owner_key()) as owner:
        customer = issue_license(owner)["customer"]
    _sign_in(page, console_server, console_server.owner_key())
    page.goto(f"{console_server.url}/console/customers?q={customer}")
    row = page.locator("table tbody tr")
    assert row.count() == 1
    assert "Device Co" in row.inner_text()
    assert "it@device.example" in row.inner_text()


def test_the_owner_revokes_with_a_reason(console_server: Server, page: Any) -> None:
    with console_server.client(console_server.owner_key()) as owner:
        serial = issue_license(owner)["serial"]
    _sign_in(page, console_server, console_server.owner_key())
    page.goto(f"{console_server.url}/console/licenses/{serial}")
    page.fill('[data-action="revoke"] input[name=reason]', "contract ended")
    with page.expect_navigation():
        page.click('[data-action="revoke"] button')
    # The seeded revocations are months old: this one is far from the threshold.
    assert page.locator("[data-approval-pending]").count() == 0
    status = page.locator("[data-license-status]").get_attribute("data-license-status")
    assert status == "revoked"
    assert page.locator("[data-action]").count() == 0


@pytest.fixture(scope="module")
def gated_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Every revocation needs a second person's approval (threshold 0)."""
    data_dir = tmp_path_factory.mktemp("console-gated") / "data"
    seed_data_dir(data_dir)
    logs = tmp_path_factory.mktemp("console-gated-logs")
    with running_server(data_dir, logs, TENURE_APPROVAL_REVOKE_THRESHOLD="0") as running:
        with running.client(running.owner_key()) as owner:
            apply_example_catalog(owner)
        yield running


def test_a_revocation_past_the_threshold_waits_for_approval(
    gated_server: Server, page: Any
) -> None:
    with gated_server.client(gated_server.owner_key()) as owner:
        serial = issue_license(owner)["serial"]
    _sign_in(page, gated_server, gated_server.owner_key())
    page.goto(f"{gated_server.url}/console/licenses/{serial}")
    page.fill('[data-action="revoke"] input[name=reason]', "fraud ring")
    with page.expect_navigation():
        page.click('[data-action="revoke"] button')
    assert page.locator("[data-approval-pending]").count() == 1
    status = page.locator("[data-license-status]").get_attribute("data-license-status")
    assert status == "active"
    with gated_server.client(gated_server.owner_key()) as owner:
        pending = owner.get("/v1/approvals", params={"status": "pending"}).json()["approvals"]
    assert [(a["action"], a["target"]) for a in pending] == [("license.revoke", serial)]
