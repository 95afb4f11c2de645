"""Observability: Prometheus metrics, OpenTelemetry traces, JSON logs, SLOs
(docs/operations.md)."""
