"""Pure parts of the observability package: SLO arithmetic, the merge of state metrics
across accounts."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families

from tenure.observability import metrics
from tenure.ops import slo


def test_an_unspent_budget_is_one_a_spent_one_zero_and_an_overspent_one_negative() -> None:
    assert slo.budget_remaining(0, 0, 0.999) == 1.0
    assert slo.budget_remaining(0, 1000, 0.999) == 1.0
    assert slo.budget_remaining(1, 1000, 0.999) == pytest.approx(0.0)
    assert slo.budget_remaining(3, 1000, 0.999) == pytest.approx(-2.0)


def test_a_report_gives_both_objectives_from_the_counts() -> None:
    report = slo.report(slo.Objectives(0.99, 50, 0.9, 7), total=200, errors=1, slow=10)
    assert report.availability == pytest.approx(0.995)
    assert report.fast_share == pytest.approx(0.95)
    assert report.availability_budget_remaining == pytest.approx(0.5)
    assert report.latency_budget_remaining == pytest.approx(0.5)
    assert report.window_days == 7


def test_state_metrics_of_several_accounts_share_one_family_with_account_labels() -> None:
    def source(conn: object, account: str) -> list[GaugeMetricFamily]:
        family = GaugeMetricFamily("tenure_test_findings", "Findings.", labels=["kind"])
        family.add_metric(["x"], 1 if account == "a" else 2)
        return [family]

    families = [m for account in ("a", "b") for m in source(None, account)]
    for account, family in zip(("a", "b"), families, strict=True):
        family.samples = [
            s._replace(labels={**s.labels, "account": account}) for s in family.samples
        ]
    text = metrics.exposition(families, with_process=False).decode()
    [parsed] = list(text_string_to_metric_families(text))
    assert text.count("# TYPE tenure_test_findings") == 1
    assert {s.labels["account"]: s.value for s in parsed.samples} == {"a": 1.0, "b": 2.0}


def test_an_unknown_http_method_is_counted_as_other_so_labels_stay_bounded() -> None:
    import asyncio

    from tenure.api.observability import ObservabilityMiddleware

    async def answer(scope: object, receive: object, send: Any) -> None:
        await send({"type": "http.response.start", "status": 405, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def ignore(message: object) -> None:
        pass

    async def nothing() -> dict[str, object]:
        return {"type": "http.request", "body": b""}

    middleware = ObservabilityMiddleware(answer, slow_ms=100)
    for method in ("X1BREW", "X2BREW"):
        scope = {"type": "http", "method": method, "path": "/p", "headers": []}
        asyncio.run(middleware(scope, nothing, ignore))
    text = metrics.exposition([], with_process=True).decode()
    assert "BREW" not in text
    assert 'method="OTHER",route="unmatched",status="405"' in text
