"""Operations: webhooks and their worker, deployment reports and reconciliation,
lifecycle notices, anomaly alerts, the per-minute counters, health and readiness,
state gauges and SLOs. Application layer: above ``tenure.durability`` and
``tenure.service``, below the entrypoints."""
