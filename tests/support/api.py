"""Talking to a running server over HTTP as its bootstrap owner and as people: the
example catalog, keys that approve each other's requests, licenses, checkpoints."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.server import REQUEST_TIMEOUT

CATALOG = Path(__file__).resolve().parents[2] / "examples" / "catalog.yaml"


def apply_example_catalog(owner: httpx.Client) -> None:
    """Apply ``examples/catalog.yaml`` (products studio and render-farm, plan studio-pro …).

    Where it takes entitlements from licensed plans it needs approval, and no key can
    approve a request of the bootstrap key: ``owner`` withdraws its request, and two
    people's keys it makes ask and approve instead."""
    yaml, headers = CATALOG.read_bytes(), {"Content-Type": "application/yaml"}
    applied = owner.post("/v1/catalog", content=yaml, headers=headers)
    if applied.status_code != 202:
        assert applied.status_code == 200, applied.text
        return
    withdrawn = owner.post(
        f"/v1/approvals/{applied.json()['approval']['approval']}/reject",
        json={"reason": "asked by a person instead"},
    )
    assert withdrawn.status_code == 200, withdrawn.text
    first, second = people(owner)
    with client_with(owner, first) as person:
        asked = person.post("/v1/catalog", content=yaml, headers=headers)
    assert asked.status_code == 202, asked.text
    approve_with(owner, second, asked.json()["approval"]["approval"])


def people(owner: httpx.Client, role: str = "admin") -> tuple[str, str]:
    """Two keys of ``role`` that ``owner`` (the bootstrap key) makes: two people's
    keys, which approve each other's requests (the two-person rule, docs/approvals.md)."""
    keys = []
    for name in ("first person", "second person"):
        made = owner.post("/v1/apikeys", json={"role": role, "name": name})
        assert made.status_code == 201, made.text
        keys.append(str(made.json()["key"]))
    return keys[0], keys[1]


def client_with(client: httpx.Client, key: str) -> httpx.Client:
    """A client of ``client``'s server that authenticates with the API key ``key``."""
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.Client(base_url=client.base_url, headers=headers, timeout=REQUEST_TIMEOUT)


def approve_with(client: httpx.Client, key: str, approval: str) -> dict[str, Any]:
    """Approve ``approval`` with the API key ``key`` (at ``client``'s server) and check
    that it executed; the answer of ``POST /v1/approvals/{id}/approve``."""
    with client_with(client, key) as approver:
        done = approver.post(f"/v1/approvals/{approval}/approve", json={"reason": "second pair"})
    assert done.status_code == 200, done.text
    assert done.json()["approval"]["status"] == "executed", done.text
    body: dict[str, Any] = done.json()
    return body


def rotate_token_keys(owner: httpx.Client) -> str:
    """Rotate the account's token keys as the two-person rule wants it (a person
    asks, another approves, both made by ``owner``); the new signing key's kid."""
    first, second = people(owner)
    with client_with(owner, first) as asker:
        asked = asker.post("/v1/keys/rotate")
    assert asked.status_code == 202, asked.text
    rotated = approve_with(owner, second, asked.json()["approval"]["approval"])
    kid: str = rotated["result"]["kid"]
    return kid


def ledger_key_of(client: httpx.Client) -> str:
    """The account's one ledger verifier key (``GET /v1/ledger/key``): what an
    application ships as ``LicenseClient(ledger_key=...)``."""
    answer = client.get("/v1/ledger/key")
    assert answer.status_code == 200, answer.text
    [line] = answer.text.splitlines()
    return line


def issue_license(owner: httpx.Client, plan: str = "studio-pro") -> dict[str, Any]:
    """A new customer and a new license of ``plan`` (product studio) for it; the answer
    of ``POST /v1/licenses`` (serial, key, …)."""
    customer = owner.post(
        "/v1/customers", json={"name": "Device Co", "email": "it@device.example"}
    ).json()["id"]
    issued = owner.post(
        "/v1/licenses",
        json={
            "product": "studio",
            "plan": plan,
            "customer": customer,
            "order_ref": uuid.uuid4().hex,
        },
    )
    assert issued.status_code == 201, issued.text
    body: dict[str, Any] = issued.json()
    return body


@dataclass(frozen=True)
class Fetched:
    status: int
    content_type: str
    text: str


def fetch_checkpoints(api: httpx.Client) -> dict[int, Fetched]:
    """``GET /v1/ledger/checkpoint?size=N`` for every N from 0 to the ledger size + 1."""
    size = api.get("/v1/ledger/events", params={"start": 0, "limit": 1}).json()["size"]

    def fetch(n: int) -> Fetched:
        response = api.get("/v1/ledger/checkpoint", params={"size": n})
        return Fetched(response.status_code, response.headers["content-type"], response.text)

    with ThreadPoolExecutor(max_workers=8) as pool:
        return dict(zip(range(size + 2), pool.map(fetch, range(size + 2)), strict=True))


def ledger_size(client: httpx.Client) -> int:
    """The size of the ledger of ``client``'s account (``GET /v1/ledger/events``)."""
    response = client.get("/v1/ledger/events", params={"start": 0, "limit": 1})
    assert response.status_code == 200, response.text
    size: int = response.json()["size"]
    return size


def wait_for(what: str, check: Callable[[], Any], timeout: float = 20.0) -> None:
    """Poll ``check`` until it is true; fail the test naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)
