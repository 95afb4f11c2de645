"""``python -m bench --only observability``: what metrics and tracing cost a check.

Five uvicorn x1 servers on one seeded store, driven by wrk one at a time (closed
loop, the ``checks`` benchmark's helpers and load): Tenure with process metrics and
tracing off (``metrics_enabled=false``, no tracer); with metrics on and tracing off
(the default configuration); with metrics on and 10 % of requests traced; with both
on and every request traced; spans go through a ``BatchSpanProcessor`` to an exporter
that discards them, so the figure is the cost of recording, not of a collector. The
bare ASGI endpoint of ``bench.bare_app`` is the limit. Rounds alternate the order.

    uvicorn --factory bench.observability:app_off      # also app_metrics, app_sampled, app_on
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import ExitStack

from fastapi import FastAPI
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, Sampler, TraceIdRatioBased

from bench import checks_http as ch
from bench.common import Options, Result, Timer, temp_dir
from tenure.app.factory import create_app
from tenure.config import Settings

APPS = {
    "off": "bench.observability:app_off",
    "metrics": "bench.observability:app_metrics",
    "sampled": "bench.observability:app_sampled",
    "on": "bench.observability:app_on",
}


class _Discard(SpanExporter):
    """Takes every span batch and drops it."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def app_off() -> FastAPI:
    """Tenure with process metrics and tracing off."""
    settings = Settings().model_copy(update={"metrics_enabled": False, "tracing_enabled": False})
    return create_app(settings)


def app_metrics() -> FastAPI:
    """Tenure as configured by default: process metrics on, tracing off."""
    settings = Settings().model_copy(update={"metrics_enabled": True, "tracing_enabled": False})
    return create_app(settings)


def _traced(sampler: Sampler) -> FastAPI:
    provider = TracerProvider(sampler=sampler)
    provider.add_span_processor(BatchSpanProcessor(_Discard()))
    settings = Settings().model_copy(update={"metrics_enabled": True})
    return create_app(settings, tracer_provider=provider)


def app_sampled() -> FastAPI:
    """Process metrics on, one request in ten traced (spans discarded)."""
    return _traced(ParentBased(TraceIdRatioBased(0.1)))


def app_on() -> FastAPI:
    """Process metrics on and every request traced (spans discarded)."""
    return _traced(ALWAYS_ON)


def run(opts: Options) -> list[Result]:
    size = ch.sizes(opts)
    rounds = 2 if opts.quick else 3
    with temp_dir("observability", opts.tmp_root) as workdir:
        timer = Timer()
        data_dir = workdir / "data"
        work = ch.prepare(data_dir, size.events)
        print(
            f"  store: {size.events:,} demo events in {timer.elapsed():.1f} s; "
            f"uvicorn x1 each, wrk {ch.CONNECTIONS} connections, {size.warmup:g} s warmup, "
            f"{rounds} rounds x {size.seconds:g} s alternating {' / '.join(APPS)} / bare"
        )
        env = dict(os.environ, TENURE_DATA_DIR=str(data_dir), PYTHONPATH=str(ch.REPO))
        for name in ("TENURE_METRICS_ENABLED", "TENURE_TRACING_ENABLED", "TENURE_OTLP_ENDPOINT"):
            env.pop(name, None)
        script = ch.write_wrk_script(workdir / "check.lua", work.bodies, f"Bearer {work.api_key}")
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {work.api_key}"}
        runs: dict[str, list[ch.Closed]] = {label: [] for label in [*APPS, "bare"]}
        with ExitStack() as stack:
            servers = {
                label: stack.enter_context(
                    ch.running("uvicorn", 1, app, env, workdir, f"observability {label}")
                )
                for label, app in [*APPS.items(), ("bare", ch.BARE_APP)]
            }
            for label, srv in servers.items():
                ch.preflight(srv, work.bodies, headers, check=label != "bare")
                ch.wrk(srv, script, size.warmup)
            for round_no in range(rounds):
                order = list(servers.items())
                for label, srv in order if round_no % 2 == 0 else reversed(order):
                    runs[label].append(ch.wrk(srv, script, size.seconds))
    return _report(runs)


def _rate(runs: list[ch.Closed]) -> float:
    return sum(r.requests for r in runs) / sum(r.seconds for r in runs)


def _report(runs: dict[str, list[ch.Closed]]) -> list[Result]:
    rate = {label: _rate(closed) for label, closed in runs.items()}
    errors = sum(r.errors for rs in runs.values() for r in rs)
    for label, closed in runs.items():
        p99 = max(r.p99_ms for r in closed)
        print(f"  {label:<8} {rate[label]:>9,.0f} req/s   worst p99 {p99:.2f} ms")
    print(f"  wrk errors {errors}")
    described = {
        "metrics": "check uvicorn x1, metrics on, tracing off (default)",
        "sampled": "check uvicorn x1, metrics on, 10 % of requests traced",
        "on": "check uvicorn x1, metrics on, every request traced",
    }
    results = [
        Result(
            what,
            rate[label],
            "req/s",
            rate["off"],
            "same server, both off",
            "req/s",
            "no goal set",
            None,
        )
        for label, what in described.items()
    ]
    results.append(
        Result(
            "check uvicorn x1, metrics + tracing off",
            rate["off"],
            "req/s",
            rate["bare"],
            "bare ASGI endpoint",
            "req/s",
            "no goal set",
            None,
        )
    )
    for result in results:
        print(result.line())
    return results
