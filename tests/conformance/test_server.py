"""The real server and command line on each backend: ``tenure demo seed --db``,
``tenure serve --db``, one issuance and one check over HTTP, then the offline
commands (``ledger verify``, ``state digest``, ``state rebuild``) on the same database."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.cli import subprocess_env, tenure_executable
from support.server import BOOTSTRAP_FILE, HOST, free_port

STARTUP_TIMEOUT = 20.0


def _tenure(*args: str) -> Any:
    done = subprocess.run(
        [tenure_executable(), *args, "--output", "json"],
        env=subprocess_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"tenure {' '.join(args)}\n{done.stdout}\n{done.stderr}"
    return json.loads(done.stdout)


@pytest.fixture
def served(store_url: str, tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """A seeded store and ``tenure serve --db`` on it: (base URL, owner key, data dir)."""
    data_dir = tmp_path / "data"
    _tenure(
        "demo",
        "seed",
        "--events",
        "60",
        "--seed",
        "3",
        "--db",
        store_url,
        "--data-dir",
        str(data_dir),
    )
    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    command = [sys.executable, "-m", "tenure", "serve", "--data-dir", str(data_dir)]
    process = subprocess.Popen(
        [*command, "--db", store_url, "--port", str(port)],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=subprocess_env(),
    )
    url = f"http://{HOST}:{port}"
    try:
        _wait_until_healthy(process, url, tmp_path / "serve.log")
        key = (data_dir / BOOTSTRAP_FILE).read_text(encoding="utf-8").strip()
        yield url, key, data_dir
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


def _wait_until_healthy(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    with httpx.Client(base_url=url, timeout=1.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"tenure serve exited with {process.returncode}\n{log.read_text()}")
            try:
                if client.get("/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    pytest.fail(f"tenure serve was not healthy within {STARTUP_TIMEOUT} s\n{log.read_text()}")


def test_issue_and_check_over_http_then_verify_offline(
    served: tuple[str, str, Path], store_url: str
) -> None:
    url, key, data_dir = served
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as api:
        customer = api.post("/v1/customers", json={"name": "Acme", "email": "it@acme.example"})
        assert customer.status_code == 201, customer.text
        body = {
            "product": "studio",
            "plan": "studio-basic",
            "customer": customer.json()["id"],
            "order_ref": "ord-conformance-1",
        }
        issued = api.post("/v1/licenses", json=body)
        assert issued.status_code == 201, issued.text
        check = {"license": issued.json()["key"], "entitlement": "feature:export-pdf"}
        answer = api.post("/v1/check", json=check)
        assert answer.status_code == 200, answer.text
        assert (answer.json()["allowed"], answer.json()["reason"]) == (True, "ok")
        size = api.get("/v1/ledger/events", params={"start": 0, "limit": 1}).json()["size"]
    assert size == 62  # the seed's 60 events, the customer, the license

    where = ["--db", store_url, "--data-dir", str(data_dir)]
    verified = _tenure("ledger", "verify", *where)
    digest = _tenure("state", "digest", *where)
    rebuilt = _tenure("state", "rebuild", *where)
    assert verified["size"] == digest["size"] == size
    assert rebuilt["after"] == rebuilt["before"] == digest["digest"]
