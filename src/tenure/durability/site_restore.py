"""Restoring every account a site holds, all or nothing (``tenure restore``).

A site keeps each account under its own name (``<account>/...``). A disaster
restore brings back every one of them in ONE write transaction: each account is
proven (``restore.prove``), written and read back in turn, and the transaction
commits only when every account has been, so that a refusal or an error for any
account leaves the target as it was. The closing report counts the rows written
per table (``inventory``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from tenure.durability import audit_shipping, epochs, inventory
from tenure.durability.restore import Progress, RestoreRefused, RestoreReport, prove, verify_written
from tenure.durability.restore import apply as apply_restore
from tenure.durability.sites import Site
from tenure.ledger.note import NoteVerifier
from tenure.service.replay import cyclic_gc_paused
from tenure.store.unit import Store

Verifiers = Callable[[str], list[NoteVerifier]]
"""``account`` → the ledger keys trusted for it."""

Announce = Callable[[str, str], None]
"""Called with (account, what is happening) before each account's stage."""


@dataclass(frozen=True)
class Options:
    """What to restore: the moment (``at_seq`` / ``at_time``: the whole ledger when
    both are None), ``replace``, ``new_epoch`` and ``without_audit`` as
    ``restore.restore`` takes them."""

    at_seq: int | None = None
    at_time: datetime | None = None
    replace: bool = False
    new_epoch: bool = False
    without_audit: bool = False


@dataclass(frozen=True)
class SiteRestore:
    """What a restore of several accounts did."""

    reports: list[RestoreReport]
    rows: dict[str, dict[str, int]]
    """Per account, the rows of each table of ``inventory.RESTORED`` now stored."""

    def totals(self) -> dict[str, int]:
        """Rows per table, summed over the accounts."""
        return {
            table: sum(rows.get(table, 0) for rows in self.rows.values())
            for table in inventory.RESTORED
        }


def accounts_at(site: Site) -> list[str]:
    """The accounts whose ledger ``site`` holds (a signed checkpoint in some epoch),
    sorted."""
    found = []
    for name in site.children():
        where = epochs.namespace(name, epochs.current(site, name))
        if site.get(f"{where}/checkpoint") is not None:
            found.append(name)
    return found


def restore_accounts(
    site: Site,
    accounts: list[str],
    target: Store,
    verifiers: Verifiers,
    options: Options = Options(),
    announce: Announce | None = None,
    progress: Progress | None = None,
) -> SiteRestore:
    """Restore ``accounts`` (every account at the site when empty) from ``site``
    into ``target``, all in one transaction. Raises ``RestoreRefused`` (also for a
    site that holds no account), ``LedgerTampered`` or ``DigestMismatch`` naming the
    account, leaving the target unchanged."""
    chosen = accounts or accounts_at(site)
    if not chosen:
        raise RestoreRefused(f"{site.url} holds no ledger of any account")
    reports, rows = [], {}
    # One account's proof in memory at a time, all of them in one transaction: the
    # target is new (or refused unless replaced), so holding its write lock while
    # the next account is fetched and proven keeps nobody waiting.
    with cyclic_gc_paused(), target.write() as tx:
        for account in chosen:
            if announce:
                announce(account, "proving")
            trusted = verifiers(account)
            # Into an account the target lacks, the events go in as they are proven.
            empty = tx.ledger.head(account) is None
            proven = prove(
                site,
                account,
                trusted,
                options.at_seq,
                progress,
                options.at_time,
                options.new_epoch,
                tx if empty else None,
            )
            if options.without_audit:
                proven.audit = audit_shipping.ShippedAudit(source="skipped")
            if announce:
                announce(account, f"writing {proven.size} events")
            replaced = apply_restore(tx, proven, trusted, options.replace)
            reports.append(verify_written(tx, proven, replaced))
            rows[account] = tx.service_rows.counts(account, inventory.WRITTEN_BY_RESTORE)
    return SiteRestore(reports, rows)
