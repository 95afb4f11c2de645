"""``python -m bench --only observability``: what metrics and tracing cost a check.

Three uvicorn x1 servers on one seeded store, driven by wrk (closed loop, the
``checks`` benchmark's helpers and load): Tenure with process metrics and tracing
off (``metrics_enabled=false``, no tracer), Tenure with both on (every request
sampled, spans through a ``BatchSpanProcessor`` to an exporter that discards them,
so the figure is the cost of recording, not of a collector), and the bare ASGI
endpoint of ``bench.bare_app`` as the limit. Rounds alternate between the servers.

    uvicorn --factory bench.observability:app_off
    uvicorn --factory bench.observability:app_on
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from fastapi import FastAPI
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_ON

from bench import checks_http as ch
from bench.common import Options, Result, Timer, temp_dir
from tenure.api.app import create_app
from tenure.config import Settings

OFF_APP = "bench.observability:app_off"
ON_APP = "bench.observability:app_on"


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


def app_on() -> FastAPI:
    """Tenure with process metrics on and every request traced (spans discarded)."""
    provider = TracerProvider(sampler=ALWAYS_ON)
    provider.add_span_processor(BatchSpanProcessor(_Discard()))
    settings = Settings().model_copy(update={"metrics_enabled": True})
    return create_app(settings, tracer_provider=provider)


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
            f"{rounds} rounds x {size.seconds:g} s alternating off / on / bare"
        )
        env = dict(os.environ, TENURE_DATA_DIR=str(data_dir), PYTHONPATH=str(ch.REPO))
        for name in ("TENURE_METRICS_ENABLED", "TENURE_TRACING_ENABLED", "TENURE_OTLP_ENDPOINT"):
            env.pop(name, None)
        script = ch.write_wrk_script(workdir / "check.lua", work.bodies, f"Bearer {work.api_key}")
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {work.api_key}"}
        runs: dict[str, list[ch.Closed]] = {"off": [], "on": [], "bare": []}
        with (
            ch.running("uvicorn", 1, OFF_APP, env, workdir, "observability off") as off,
            ch.running("uvicorn", 1, ON_APP, env, workdir, "observability on") as on,
            ch.running("uvicorn", 1, ch.BARE_APP, env, workdir, "bare") as bare,
        ):
            servers = {"off": off, "on": on, "bare": bare}
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
    off, on, bare = _rate(runs["off"]), _rate(runs["on"]), _rate(runs["bare"])
    errors = sum(r.errors for rs in runs.values() for r in rs)
    for label, rate in (("off", off), ("on", on), ("bare", bare)):
        p99 = max(r.p99_ms for r in runs[label])
        print(f"  {label:<5} {rate:>9,.0f} req/s   worst p99 {p99:.2f} ms")
    print(
        f"  on/off {on / off:.3f} (cost of metrics + tracing {100 * (1 - on / off):.1f}%); "
        f"off/bare {off / bare:.3f}; on/bare {on / bare:.3f}; wrk errors {errors}"
    )
    results = [
        Result(
            "check uvicorn x1, metrics + tracing on",
            on,
            "req/s",
            off,
            "same server, both off",
            "req/s",
            "no goal set",
            None,
        ),
        Result(
            "check uvicorn x1, metrics + tracing off",
            off,
            "req/s",
            bare,
            "bare ASGI endpoint",
            "req/s",
            "no goal set",
            None,
        ),
    ]
    for result in results:
        print(result.line())
    return results
