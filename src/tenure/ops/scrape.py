"""The state metrics read from the store at scrape time: sources register here
(``state_source``, a decorator, when their module is imported) and ``/metrics``
reads them all (``read_state``) in one read transaction per scrape."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import sqlalchemy as sa
from prometheus_client.core import Metric

StateSource = Callable[[sa.Connection, str], Iterable[Metric]]
"""Reads state metrics of one account from an open read connection."""

_SOURCES: list[StateSource] = []


def state_source(source: StateSource) -> StateSource:
    """Register ``source`` (a decorator): ``/metrics`` calls it on every scrape."""
    if source not in _SOURCES:
        _SOURCES.append(source)
    return source


def state_sources() -> tuple[StateSource, ...]:
    """The registered state sources, in registration order."""
    return tuple(_SOURCES)


def read_state(conn: sa.Connection, accounts: Iterable[str]) -> list[Metric]:
    """Every registered state source's metrics for each of ``accounts``, each sample
    labelled with its ``account`` (added where a source left it out, so that two
    accounts never give one series two values)."""
    found: list[Metric] = []
    for account in accounts:
        for source in _SOURCES:
            for metric in source(conn, account):
                metric.samples = [
                    s
                    if "account" in s.labels
                    else s._replace(labels={**s.labels, "account": account})
                    for s in metric.samples
                ]
                found.append(metric)
    return found
