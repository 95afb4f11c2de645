"""Start and stop what the app's observability needs (``create_app`` calls this):
the tracer, the process-metrics switch, the per-minute counter flusher (which also
samples the shipper's gauges) and the multiprocess bookkeeping."""

from __future__ import annotations

import os

from opentelemetry.sdk.trace import TracerProvider

from tenure.config import Settings
from tenure.durability.shipping import Shipper
from tenure.durability.upgrades import schema_head
from tenure.observability import metrics, tracing
from tenure.ops import counters
from tenure.ops.gauges import sample_shipper
from tenure.store.unit import Store


class Operations:
    """The app's observability, from ``start`` to ``stop``.

    ``tracer_provider`` overrides the one the settings describe (tests pass one with
    an in-memory exporter); a provider given is not shut down here, one built is.
    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        shipper: Shipper,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self._settings = settings
        self._store = store
        self._shipper = shipper
        self._given = tracer_provider
        self._built: TracerProvider | None = None
        self._flusher: counters.Flusher | None = None
        self.schema_head = schema_head()

    def start(self) -> Operations:
        s = self._settings
        metrics.enable_process_metrics(s.metrics_enabled)
        if self._given is None:
            self._built = tracing.build_provider(s)
        tracing.install(self._given or self._built)
        self._flusher = counters.Flusher(self._store, s.ops_flush_seconds, self._tick)
        self._flusher.start()
        return self

    def _tick(self) -> None:
        if self._settings.metrics_enabled:
            sample_shipper(self._shipper)

    def stop(self) -> None:
        """Flush the counters, stop tracing (exporting what is batched) and, with
        several workers, mark this one's live gauges dead."""
        if self._flusher is not None:
            self._flusher.stop()
            self._flusher = None
        tracing.install(None)
        if self._built is not None:
            self._built.shutdown()
            self._built = None
        metrics.mark_process_dead(os.getpid())
