"""Restoring the live store of a running service from one of its configured sites
(``POST /v1/restores``, once a second principal approved it; docs/approvals.md).

Unlike ``tenure restore`` into an empty database, the site's proven ledger replaces
the store's, which it must extend; the projection is rebuilt and proven, and the
erasures of personal data the ledger records are applied again.
"""

from __future__ import annotations

import time

from tenure.durability import epochs
from tenure.durability import restore as restoring
from tenure.durability.shipping import site_end
from tenure.durability.sites import open_site
from tenure.errors import Conflict, TenureError
from tenure.service.context import ServiceContext
from tenure.service.personal import reapply_erasures

SITE_WAIT_SECONDS = 30.0
"""How long an approved restore waits for the site to hold the live ledger."""


def wait_for_site(context: ServiceContext, account: str, url: str) -> None:
    """Return once the site ``url`` holds every event of ``account``'s live ledger (a
    restore must extend it); ``Conflict`` when it does not within
    ``SITE_WAIT_SECONDS`` (or five shipping intervals, if longer)."""
    with context.store.read() as tx:
        head = tx.ledger.head(account)
    size = head.size if head else 0
    site = open_site(url)
    interval = context.settings.ship_interval_seconds
    deadline = time.monotonic() + max(SITE_WAIT_SECONDS, 5 * interval)
    while time.monotonic() < deadline:
        where = epochs.namespace(account, epochs.current(site, account))
        if site_end(site, where) >= size:
            return
        time.sleep(min(0.2, interval))
    raise Conflict(f"{url} did not receive the live ledger ({size} events) in time")


def restore_from_site(context: ServiceContext, account: str, url: str) -> restoring.RestoreReport:
    """Restore ``account`` of the live store from the configured site ``url``: the
    site's proven ledger replaces the store's, which it must extend (see ``tenure
    restore --replace``); the projection is rebuilt and proven. Raises
    ``RestoreRefused`` when the site cannot prove a restore or the store has events
    the site lacks. The caller records ``ledger.restored``."""
    verifier = context.ledger_signer(account)[1].verifier
    try:
        proven = restoring.prove(open_site(url), account, [verifier])
        with context.store.write() as tx:
            replaced = restoring.apply(tx, proven, [verifier], replace=True)
        report = restoring.check(context.store, proven, replaced)
    except restoring.RestoreRefused:
        raise
    except TenureError as exc:  # a site that is down or does not prove itself
        raise restoring.RestoreRefused(f"{url}: {exc.message}") from exc
    reapply_erasures(context.store)  # a restore never brings erased personal data back
    return report
