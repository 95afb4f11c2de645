"""Checks on several servers on one PostgreSQL database (issue 19): server B, whose
read model already holds a license, honours a revocation made on server A within
one second, and no answer of B quotes a checkpoint that covers the revocation while
still allowing the license (no check reads state older than the checkpoint it
quotes)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from support.api import apply_example_catalog, issue_license, ledger_size
from support.postgres import pg_url
from support.server import running_server

REVOCATION_DEADLINE = 1.0
"""Seconds within which B must answer ``revoked`` after A acknowledged the revocation."""
WATCH = 1.5
"""Seconds B is watched after the revocation (every answer checked)."""


def _check(client: httpx.Client, serial: str) -> dict[str, Any]:
    answer = client.post("/v1/check", json={"license": serial, "entitlement": "seats"})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_a_revocation_on_one_server_is_honoured_by_another_within_a_second(
    pg_database: str, tmp_path: Path
) -> None:
    url = pg_url(pg_database)
    data_dir, logs = tmp_path / "data", tmp_path / "logs"
    logs.mkdir()
    with (
        running_server(data_dir, logs, "--db", url) as a,
        running_server(data_dir, logs, "--db", url) as b,
        a.client(a.owner_key()) as on_a,
        b.client(b.owner_key()) as on_b,
    ):
        apply_example_catalog(on_a)
        serial = issue_license(on_a)["serial"]
        for _ in range(3):  # B reads, proves and keeps the license
            assert _check(on_b, serial)["reason"] == "ok"

        revoked = on_a.post(f"/v1/licenses/{serial}/revoke", json={"reason": "chargeback"})
        acknowledged = time.monotonic()
        assert revoked.status_code == 200, revoked.text
        covering = ledger_size(on_a)  # a checkpoint this large holds the revocation
        honoured_after: float | None = None
        answers = 0
        while time.monotonic() - acknowledged < WATCH:
            answer = _check(on_b, serial)
            answers += 1
            elapsed = time.monotonic() - acknowledged
            quoted = answer["checkpoint"]["size"]
            if answer["reason"] == "revoked":
                honoured_after = honoured_after if honoured_after is not None else elapsed
            else:
                assert honoured_after is None, "B allowed the license again after revoking it"
                assert quoted < covering, (
                    f"B allowed the license quoting checkpoint {quoted}, which holds the "
                    f"revocation (ledger size {covering} after it)"
                )
        assert honoured_after is not None, f"B still allows a revoked license after {WATCH} s"
        assert honoured_after <= REVOCATION_DEADLINE, honoured_after
        print(f"B honoured A's revocation after {honoured_after * 1000:.1f} ms ({answers} checks)")
