"""The state metrics read from the store at scrape time: sources register here
(``state_source``, a decorator, when their module is imported) and ``/metrics``
reads them all (``read_state``) in one read transaction per scrape."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prometheus_client.core import Metric

from tenure.config import Settings
from tenure.observability.metrics import account_gauge
from tenure.store.unit import Store, Transaction


@dataclass(frozen=True)
class Scrape:
    """What a state source reads from: the scrape's read transaction, the account
    whose metrics it gives, and the settings (objectives, ...)."""

    tx: Transaction
    account: str
    settings: Settings


StateSource = Callable[[Scrape], Iterable[Metric]]
"""Reads the state metrics of one account."""

_SOURCES: list[StateSource] = []


def state_source(source: StateSource) -> StateSource:
    """Register ``source`` (a decorator): ``/metrics`` calls it on every scrape."""
    if source not in _SOURCES:
        _SOURCES.append(source)
    return source


def count_source(name: str, doc: str, count: Callable[[Transaction, str], int]) -> StateSource:
    """Register a source of one gauge, ``name``: ``count(tx, account)`` of each account."""

    def source(scrape: Scrape) -> Iterable[Metric]:
        yield account_gauge(name, doc, scrape.account, count(scrape.tx, scrape.account))

    return state_source(source)


def state_sources() -> tuple[StateSource, ...]:
    """The registered state sources, in registration order."""
    return tuple(_SOURCES)


def read_state(store: Store, settings: Settings) -> list[Metric]:
    """Every registered state source's metrics for every account of the store (and
    the default account), in one read transaction; each sample is labelled with its
    ``account`` (added where a source left it out, so that two accounts never give
    one series two values)."""
    found: list[Metric] = []
    with store.read() as tx:
        accounts = sorted(set(tx.ledger.accounts()) | {settings.default_account})
        for account in accounts:
            scrape = Scrape(tx, account, settings)
            for source in _SOURCES:
                for metric in source(scrape):
                    metric.samples = [
                        s
                        if "account" in s.labels
                        else s._replace(labels={**s.labels, "account": account})
                        for s in metric.samples
                    ]
                    found.append(metric)
    return found
