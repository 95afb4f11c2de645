"""Metrics, traces, logs, health and SLOs of an in-process app (``create_app``) over
a real store in a temporary data dir (docs/observability.md)."""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from tenure.app.factory import create_app

with warnings.catch_warnings():
    # Starlette asks for httpx2, which is not installed; httpx works the same here.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient
from tenure.app.runtime import Runtime
from tenure.config import Settings
from tenure.observability import logs
from tenure.ops import counters, slo
from tenure.service.apikeys import ensure_bootstrap_owner


@dataclass
class App:
    client: TestClient
    runtime: Runtime
    key: str

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


@contextmanager
def running(
    data_dir: Path, provider: TracerProvider | None = None, **settings: Any
) -> Iterator[App]:
    s = Settings(data_dir=data_dir, encrypt_personal_data=False, **settings)
    runtime = Runtime.open(s)
    key = ensure_bootstrap_owner(runtime.store, data_dir, s.default_account)
    assert key is not None
    counters.discard_pending()
    try:
        with TestClient(create_app(s, runtime, tracer_provider=provider)) as client:
            yield App(client, runtime, key)
    finally:
        runtime.close()


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    with running(tmp_path) as app:
        yield app


def scrape(app: App, **headers: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    response = app.client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def value(found: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    return sum(v for got, v in found.get(name, []) if labels.items() <= got.items())


def check(app: App, license: str = "no-such-license") -> int:
    body = {"license": license, "entitlement": "feature:x"}
    return app.client.post("/v1/check", json=body, headers=app.headers()).status_code


def test_metrics_count_decisions_requests_and_auth_failures(app: App) -> None:
    before = scrape(app)
    assert check(app) == 200
    assert app.client.get("/v1/ledger/checkpoint").status_code == 401
    after = scrape(app)
    labels = {"allowed": "false", "reason": "unknown_license"}
    assert value(after, "tenure_decisions_total", **labels) == (
        value(before, "tenure_decisions_total", **labels) + 1
    )
    failures = "tenure_auth_failures_total"
    assert value(after, failures) == value(before, failures) + 1
    route = {"route": "/v1/check", "method": "POST", "status": "200"}
    assert value(after, "tenure_http_requests_total", **route) >= 1
    assert value(after, "tenure_http_request_seconds_count", route="/v1/check") >= 1
    appended = "tenure_ledger_appended_events_total"
    assert value(after, appended) == value(before, appended)  # a check appends no event
    assert value(after, "tenure_ledger_append_seconds_count") >= 1


def test_state_metrics_read_the_store_at_scrape_time(app: App) -> None:
    found = scrape(app)
    assert value(found, "tenure_ledger_size", account="default") == 0
    assert 0 <= value(found, "tenure_checkpoint_age_seconds", account="default") < 60
    assert "tenure_checkpoint_age_seconds" in found
    assert value(found, "tenure_approvals_pending", account="default") == 0
    assert value(found, "tenure_slo_availability_budget_remaining", account="default") == 1.0


def test_metrics_need_the_token_when_one_is_set(tmp_path: Path) -> None:
    with running(tmp_path, metrics_token="s3cret") as app:
        assert app.client.get("/metrics").status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert app.client.get("/metrics", headers=wrong).status_code == 401
        assert scrape(app, Authorization="Bearer s3cret")


def test_metrics_disabled_leaves_only_the_state_metrics(tmp_path: Path) -> None:
    with running(tmp_path, metrics_enabled=False) as app:
        check(app)
        found = scrape(app)
        assert "tenure_decisions_total" not in found
        assert "tenure_ledger_size" in found


def spans_named(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def test_an_append_traces_request_then_ledger_then_store(tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with running(tmp_path, provider) as app:
        exporter.clear()
        body = {"name": "Ada", "email": "ada@example.com"}
        response = app.client.post("/v1/customers", json=body, headers=app.headers())
        assert response.status_code in (200, 201), response.text
    spans = exporter.get_finished_spans()
    [request] = [s for s in spans if s.name == "POST /v1/customers"]
    appends = spans_named(spans, "ledger.append")
    assert request.context is not None
    trace_id = request.context.trace_id
    [append] = [s for s in appends if s.context and s.context.trace_id == trace_id]
    assert append.parent is not None
    [commit] = [s for s in spans_named(spans, "store.commit") if s.parent == append.context]
    assert commit.context is not None
    assert commit.context.trace_id == trace_id
    assert request.attributes is not None
    assert request.attributes["http.route"] == "/v1/customers"
    assert request.attributes["http.response.status_code"] == response.status_code


def test_a_check_is_traced_with_its_decision_span(tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with running(tmp_path, provider) as app:
        exporter.clear()
        check(app)
        spans = exporter.get_finished_spans()
    [request] = [s for s in spans if s.name == "POST /v1/check"]
    [decide] = spans_named(spans, "check.decide")
    assert request.context is not None
    assert decide.parent is not None
    assert decide.parent.span_id == request.context.span_id


def test_json_log_lines_carry_the_trace_id_and_the_access_line(tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    handler = Keep()
    handler.setFormatter(logs.JsonFormatter())
    access = logging.getLogger(logs.ACCESS_LOGGER)
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    try:
        with running(tmp_path, provider) as app:
            check(app)
    finally:
        access.removeHandler(handler)
        access.setLevel(logging.NOTSET)
    [line] = [json.loads(r) for r in records if '"/v1/check"' in r]
    assert line["logger"] == "tenure.access"
    assert line["level"] == "info"
    assert line["method"] == "POST"
    assert line["status"] == 200
    assert line["duration_ms"] >= 0
    [request] = [s for s in exporter.get_finished_spans() if s.name == "POST /v1/check"]
    assert request.context is not None
    assert line["trace_id"] == format(request.context.trace_id, "032x")


def test_text_log_lines_name_the_trace() -> None:
    record = logging.LogRecord("tenure.x", logging.INFO, "", 0, "hello %s", ("you",), None)
    assert "hello you" in logs.TextFormatter().format(record)
    assert json.loads(logs.JsonFormatter().format(record))["message"] == "hello you"


def test_healthz_is_up_and_readyz_lists_its_checks(app: App) -> None:
    assert app.client.get("/healthz").json() == {"status": "ok"}
    response = app.client.get("/readyz")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ready"
    names = {c["name"]: c for c in body["checks"]}
    assert set(names) >= {"database", "ledger_writer", "signing_key", "sidecar", "sites"}
    assert all(c["ok"] for c in names.values())


def test_readyz_is_503_naming_a_stopped_ledger_writer(app: App) -> None:
    app.client.app.state.ledger.close()  # type: ignore[attr-defined]
    response = app.client.get("/readyz")
    assert response.status_code == 503
    failed = [c["name"] for c in response.json()["checks"] if not c["ok"]]
    assert failed == ["ledger_writer"]


def test_readyz_is_503_naming_a_database_that_does_not_answer(app: App) -> None:
    with app.runtime.store.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE alembic_version"))
    response = app.client.get("/readyz")
    assert response.status_code == 503
    [database] = [c for c in response.json()["checks"] if c["name"] == "database"]
    assert not database["ok"]


def test_checks_feed_the_per_minute_counters_and_the_slo(app: App) -> None:
    for _ in range(3):
        assert check(app) == 200
    counters.flush(app.runtime.store)
    report = slo.slo_report(app.runtime.store, "default", datetime.now(UTC))
    assert report.total == 3
    assert report.errors == 0
    assert report.availability == 1.0
    answer = app.client.get("/v1/ops/slo", headers=app.headers())
    assert answer.status_code == 200, answer.text
    assert answer.json()["total"] == 3
    with app.runtime.store.read() as tx:
        since = datetime(2000, 1, 1, tzinfo=UTC)
        denied = counters.totals(tx, "default", since, datetime.now(UTC))
    assert denied[counters.CHECK_DENIED] == 3
