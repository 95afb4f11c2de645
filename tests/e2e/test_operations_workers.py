"""Operations on a real ``tenure serve --workers 2`` with a site: the metrics of both
worker processes add up whichever worker answers the scrape, and the scheduled
shipping, snapshots and restore drills show in ``/metrics``, ``/readyz`` and
``GET /v1/drills/latest`` (docs/observability.md, docs/durability.md)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from support.server import Server, running_server, seed_data_dir

CHECKS = 60
WAIT_SECONDS = 60.0
T = TypeVar("T")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("workers")
    data_dir = root / "data"
    seed_data_dir(data_dir)
    site = root / "site"
    site.mkdir()
    with running_server(
        data_dir,
        tmp_path_factory.mktemp("workers-logs"),
        "--workers",
        "2",
        TENURE_SITES=site.as_uri(),
        TENURE_SHIP_INTERVAL_SECONDS="0.2",
        TENURE_SNAPSHOT_EVERY_EVENTS="100",
        TENURE_DRILL_INTERVAL_MINUTES="0.03",
    ) as running:
        yield running


def scrape(server: Server) -> dict[str, list[tuple[dict[str, str], float]]]:
    """``/metrics`` on a fresh connection (so either worker may answer), parsed."""
    with httpx.Client(base_url=server.url, timeout=10.0) as fresh:
        answer = fresh.get("/metrics")
    assert answer.status_code == 200, answer.text
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def eventually(probe: Callable[[], T | None], what: str) -> T:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        found = probe()
        if found is not None:
            return found
        time.sleep(0.3)
    pytest.fail(f"no {what} within {WAIT_SECONDS} s")


def test_decisions_counted_by_both_workers_add_up_in_every_scrape(server: Server) -> None:
    key = server.owner_key()
    for index in range(CHECKS):
        # A new connection per check, so the kernel spreads them over both workers.
        with httpx.Client(base_url=server.url, timeout=10.0) as fresh:
            answer = fresh.post(
                "/v1/check",
                json={"license": f"TNR-NOPE-{index}", "entitlement": "seats"},
                headers={"Authorization": f"Bearer {key}"},
            )
        assert answer.status_code == 200, answer.text
        assert answer.json()["reason"] == "unknown_license"
    for _ in range(6):
        samples = scrape(server)["tenure_decisions_total"]
        unknown = [v for labels, v in samples if labels["reason"] == "unknown_license"]
        assert sum(unknown) == CHECKS
    # Both workers wrote their own counter files into the one multiprocess directory.
    files = {p.name for p in (server.data_dir / "prometheus").glob("counter_*.db")}
    assert len(files) == 2, files


def test_shipping_snapshots_and_drills_show_in_metrics_and_readiness(server: Server) -> None:
    def drill_metrics() -> dict[str, Any] | None:
        samples = scrape(server)
        passed = [v for labels, v in samples.get("tenure_drill_passed", []) if labels]
        return samples if passed else None

    samples = eventually(drill_metrics, "restore drill in /metrics")
    assert [v for _, v in samples["tenure_drill_passed"]] == [1.0]
    assert all(0 <= v < WAIT_SECONDS for _, v in samples["tenure_drill_age_seconds"])
    with server.client(server.owner_key()) as owner:
        latest = owner.get("/v1/drills/latest")
        assert latest.status_code == 200, latest.text
        assert latest.json()["passed"] is True
        ready = owner.get("/readyz")
    assert ready.status_code == 200, ready.text
    checks = {check["name"]: check for check in ready.json()["checks"]}
    assert checks["sites"]["ok"] is True, checks["sites"]
    assert checks["database"]["ok"]
    assert checks["ledger_writer"]["ok"]

    def snapshot_gauge() -> list[float] | None:
        ages = [v for _, v in scrape(server).get("tenure_snapshot_size", [])]
        return ages if ages and max(ages) > 0 else None

    sizes = eventually(snapshot_gauge, "snapshot gauge")
    ledger_size = scrape(server)["tenure_ledger_size"][0][1]
    assert 0 < max(sizes) <= ledger_size
