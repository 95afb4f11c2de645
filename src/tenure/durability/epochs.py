"""Ledger epochs: what follows when signed events are lost everywhere.

A ledger whose events beyond some size cannot be recovered from any site can never
sign again under its origin: any new checkpoint would contradict the one already
published. ``tenure restore --new-epoch`` keeps the events that are left and starts
a new log under a new origin, ``<origin>/epoch-<n>``, signed by a new key. Its first
new event, ``ledger.epoch_started``, quotes the old log's final signed checkpoint and
says how many events were lost, so that a verifier can follow the chain of epochs.

At a site, epoch 1 of an account lives under ``<account>/`` and epoch ``n`` under
``<account>/epoch-<n>/``. The current epoch is the highest whose checkpoint the
site holds.
"""

from __future__ import annotations

import re

from tenure.durability.sites import Site

_SUFFIX = re.compile(r"^(?P<base>.+)/epoch-(?P<n>[2-9]|[1-9]\d+)$")


def epoch_of(origin: str) -> int:
    """The epoch number an origin names (1 for an origin without a suffix)."""
    match = _SUFFIX.match(origin)
    return int(match["n"]) if match else 1


def next_origin(origin: str) -> str:
    """The origin of the epoch after ``origin``'s."""
    match = _SUFFIX.match(origin)
    base = match["base"] if match else origin
    return f"{base}/epoch-{epoch_of(origin) + 1}"


def namespace(account: str, epoch: int) -> str:
    """Where a site keeps an epoch of ``account``'s ledger."""
    return account if epoch == 1 else f"{account}/epoch-{epoch}"


def current(site: Site, account: str) -> int:
    """The newest epoch of ``account`` whose checkpoint ``site`` holds (1 when none)."""
    epoch = 1
    while site.get(f"{namespace(account, epoch + 1)}/checkpoint") is not None:
        epoch += 1
    return epoch
