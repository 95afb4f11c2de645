"""OpenTelemetry traces (docs/observability.md, "Traces").

``create_app`` installs a tracer (``install``) from a ``TracerProvider`` it builds
from the settings (``build_provider``) or is given (tests pass one with an in-memory
exporter). The tracer lives here, not in OpenTelemetry's global provider: two apps
in one process (tests) never see each other's spans, and with tracing off every
helper below is a shared no-op context, so the hot paths pay one attribute read.

Spans: one server span per HTTP request (``tenure.api.observability``), ``ledger.append``
around a write batch and ``store.commit`` around its transaction (the writer thread:
the batch's span is a child of the first request in it and links to every other),
``check.decide`` and ``store.read`` in the check path.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Link, Span, SpanKind, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from tenure import __version__
from tenure.config import Settings

_NOOP: AbstractContextManager[None] = nullcontext()
_state: dict[str, Tracer | None] = {"tracer": None}
_propagator = TraceContextTextMapPropagator()


def tracing_on(settings: Settings) -> bool:
    """``tracing_enabled``, or, when unset, whether an OTLP endpoint is configured."""
    if settings.tracing_enabled is not None:
        return settings.tracing_enabled
    return settings.otlp_endpoint is not None


def build_provider(settings: Settings) -> TracerProvider | None:
    """The provider the settings ask for: None when tracing is off; with an
    ``otlp_endpoint``, spans go there in batches (OTLP over HTTP)."""
    if not tracing_on(settings):
        return None
    provider = TracerProvider(
        resource=Resource.create({"service.name": "tenure", "service.version": __version__}),
        sampler=ParentBased(TraceIdRatioBased(settings.tracing_sample_ratio)),
    )
    if settings.otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(settings.otlp_endpoint)))
    return provider


def install(provider: TracerProvider | None) -> None:
    """Trace with ``provider`` from now on (None: stop tracing)."""
    _state["tracer"] = provider.get_tracer("tenure", __version__) if provider else None


def enabled() -> bool:
    """Whether spans are recorded."""
    return _state["tracer"] is not None


def span(name: str, attributes: Mapping[str, Any] | None = None) -> AbstractContextManager[Any]:
    """A child span of the current one, made current (a no-op when tracing is off)."""
    tracer = _state["tracer"]
    if tracer is None:
        return _NOOP
    return tracer.start_as_current_span(name, attributes=attributes)


def capture() -> Context | None:
    """The caller's context, for work another thread does on its behalf (None when
    tracing is off)."""
    return otel_context.get_current() if _state["tracer"] is not None else None


def batch_span(name: str, contexts: Iterable[Context | None]) -> AbstractContextManager[Any]:
    """A span for work done for several callers at once (the ledger writer's batch):
    a child of the first caller's span, linked to the others', made current."""
    tracer = _state["tracer"]
    if tracer is None:
        return _NOOP
    spans = [trace.get_current_span(c) for c in contexts if c is not None]
    spans = [s for s in spans if s.get_span_context().is_valid]
    # No caller span: a root span, not one that inherits the writer thread's context.
    parent = trace.set_span_in_context(spans[0]) if spans else Context()
    links = [Link(s.get_span_context()) for s in spans[1:]]
    attributes = {"tenure.batch.requests": len(spans)}
    return tracer.start_as_current_span(name, context=parent, links=links, attributes=attributes)


@contextmanager
def server_span(method: str, path: str, headers: Iterable[tuple[bytes, bytes]]) -> Iterator[Span]:
    """The server span of one HTTP request, continuing a ``traceparent`` it carries.
    Only call when ``enabled()``."""
    tracer = _state["tracer"]
    assert tracer is not None
    carrier = {
        k.decode("latin-1"): v.decode("latin-1")
        for k, v in headers
        if k in (b"traceparent", b"tracestate")
    }
    parent = _propagator.extract(carrier) if carrier else None
    attributes = {"http.request.method": method, "url.path": path}
    with tracer.start_as_current_span(
        f"{method} {path}", context=parent, kind=SpanKind.SERVER, attributes=attributes
    ) as current:
        yield current


def current_ids() -> tuple[str, str] | None:
    """The current span's trace id and span id in hex, or None outside a span."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")
