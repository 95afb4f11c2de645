"""Schema upgrades: where a database stands against this release's migrations, the
snapshot taken before an upgrade, and downgrades, refused unless every migration
they would undo declares itself reversible (``REVERSIBLE = True`` at module level)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

from alembic.script import Script, ScriptDirectory
from alembic.util import CommandError

from tenure import __version__
from tenure.durability import keyrows, snapshots
from tenure.durability.shipping import Shipper
from tenure.durability.sites import Site
from tenure.errors import TenureError
from tenure.ledger.note import NoteSigner
from tenure.store.databases import (
    OpenStore,
    copy_sqlite,
    downgrade_schema,
    migration_scripts,
    open_store,
    readable_tables,
    schema_revision,
    sqlite_file,
    sqlite_url,
    upgrade_schema,
)
from tenure.store.unit import Store

BASE = "base"
PRE_UPGRADE_DIR = "pre-upgrade"
"""Where, under the data dir, the pre-upgrade snapshot goes when no site is configured."""


class SchemaBehind(TenureError):
    """The database's schema is older than this release's head and this command does not
    upgrade it (``tenure db upgrade`` does; so does the service, upgrading on start)."""

    code = "schema_behind"


class SchemaAhead(TenureError):
    """The database's schema revision is not one of this release's: a newer release
    upgraded it, and this one cannot read it."""

    code = "schema_ahead"


class UnknownRevision(TenureError):
    """A schema revision this release does not know (a newer release's, or a typo)."""

    code = "unknown_revision"


class DowngradeRefused(TenureError):
    """A downgrade would undo a migration that does not declare itself reversible."""

    code = "downgrade_refused"


@dataclass(frozen=True)
class SchemaStatus:
    """The database's schema revision, this release's head, and what an upgrade applies."""

    current: str | None
    head: str
    pending: tuple[str, ...]
    """Revisions an upgrade would apply, oldest first."""

    @property
    def upgrade_pending(self) -> bool:
        return bool(self.pending)


@dataclass(frozen=True)
class SnapshotTaken:
    account: str
    size: int
    path: str


def schema_head() -> str:
    """The newest schema revision this release knows."""
    head = migration_scripts().get_current_head()
    assert head is not None, "the package ships no migration"
    return head


def _script(scripts: ScriptDirectory, revision: str) -> Script:
    try:
        script = scripts.get_revision(revision)
    except CommandError as exc:
        raise UnknownRevision(f"schema revision {revision!r} is unknown to this release") from exc
    if script is None:
        raise UnknownRevision(f"schema revision {revision!r} is unknown to this release")
    return script


def _database_script(scripts: ScriptDirectory, current: str) -> Script:
    """The migration that left a database at revision ``current``; ``SchemaAhead``
    when this release has none of that name (a newer release upgraded it)."""
    try:
        return _script(scripts, current)
    except UnknownRevision:
        raise SchemaAhead(
            f"database schema {current} is ahead of {schema_head()}, the newest this release "
            f"(tenure {__version__}) knows: run the newer release that upgraded it"
        ) from None


def status_of(current: str | None) -> SchemaStatus:
    """Where a database at revision ``current`` (None: no schema) stands.

    Raises ``SchemaAhead`` when ``current`` is not one of this release's migrations
    (the database was upgraded by a newer release)."""
    scripts = migration_scripts()
    head = schema_head()
    if current is not None:
        _database_script(scripts, current)
    applied = scripts.iterate_revisions(head, current or BASE)
    pending = tuple(reversed([s.revision for s in applied]))
    return SchemaStatus(current, head, pending)


def schema_status(url: str) -> SchemaStatus:
    """``status_of`` the database at ``url``."""
    return status_of(schema_revision(url))


def schema_behind(status: SchemaStatus) -> SchemaBehind:
    """The one line a command that will not upgrade says about a database at ``status``
    (``database schema 0004 is behind 0012: run tenure db upgrade``)."""
    if status.current is None:
        found = f"database has no schema, this release's is {status.head}"
    else:
        found = f"database schema {status.current} is behind {status.head}"
    return SchemaBehind(f"{found}: run tenure db upgrade")


def require_current_schema(url: str) -> None:
    """Raise ``SchemaBehind`` (one line, naming both revisions and the command to run)
    unless the schema of the database at ``url`` is this release's head, and
    ``SchemaAhead`` when it is a newer release's."""
    status = schema_status(url)
    if status.upgrade_pending:
        raise schema_behind(status)


def open_target(url: str) -> OpenStore:
    """The database at ``url`` as a store that a command fills (a restore's or a
    migration's target), its schema created if it has none. An older schema raises
    ``SchemaBehind`` and a newer release's ``SchemaAhead`` (each one line), before
    anything is written: only ``tenure db upgrade`` upgrades, after its snapshot."""
    status = schema_status(url)
    if status.upgrade_pending and status.current is not None:
        raise schema_behind(status)
    return open_store(url, upgrade=True)


def pre_upgrade_sites(site_urls: list[str], data_dir: Path) -> list[str]:
    """Where the snapshot before an upgrade goes: the configured sites, else the
    directory ``<data_dir>/pre-upgrade/``."""
    if site_urls:
        return site_urls
    return [(data_dir / PRE_UPGRADE_DIR).resolve().as_uri()]


def snapshot_accounts(
    store: Store,
    ledger_signer: Callable[[str], tuple[str, NoteSigner]],
    sites: Iterable[Site],
    readable: Collection[str] | None = None,
) -> list[SnapshotTaken]:
    """Ship every account's events to every site, then take and publish a signed
    snapshot of each there, so that ``tenure restore`` from any of the sites brings
    back the state before an upgrade. ``readable``: the tables a database read before
    its upgrade holds as this release reads them (the row files of others are not
    shipped). Raises what
    shipping, ``take`` and ``publish`` raise: an upgrade must not start without its
    snapshot."""
    targets = list(sites)
    files = keyrows.files_of(readable)
    Shipper(store, targets, signer=ledger_signer, files=files).ship_once()
    with store.read() as tx:
        accounts = tx.ledger.accounts()
    taken = []
    for account in accounts:
        origin, signer = ledger_signer(account)
        snapshot = snapshots.take(store, account, origin, signer)
        path = snapshots.publish(snapshot, signer, targets)
        taken.append(SnapshotTaken(account, snapshot.size, path))
    return taken


def snapshot_before_upgrade(
    url: str,
    ledger_signer: Callable[[str], tuple[str, NoteSigner]],
    sites: Iterable[Site],
    scratch: Path,
) -> list[SnapshotTaken]:
    """``snapshot_accounts`` of the database at ``url`` as it is before the upgrade.

    This release's snapshot reads this release's tables, which an older schema may
    lack; so a SQLite database is first copied (SQLite's online backup: one consistent
    read) into the directory ``scratch`` and the copy migrated, and the snapshot taken
    from the copy: the same events and projection, in the layout this release restores.
    Other databases are read in place. The live database is not written."""
    path = sqlite_file(url)
    if path is None:
        readable = readable_tables(url)
        with open_store(url) as store:
            return snapshot_accounts(store, ledger_signer, sites, readable)
    copy = scratch / "pre-upgrade.db"
    copy_sqlite(path, copy)
    with open_store(sqlite_url(copy), upgrade=True) as store:
        return snapshot_accounts(store, ledger_signer, sites)


def apply_upgrade(url: str) -> SchemaStatus:
    """Run the pending migrations of the database at ``url``; return the status from
    before."""
    before = schema_status(url)
    if before.upgrade_pending:
        upgrade_schema(url)
    return before


def downgrade_steps(current: str | None, target: str) -> list[Script]:
    """The migrations a downgrade from ``current`` to ``target`` undoes, newest first.

    Raises ``UnknownRevision`` for a revision this release does not know and
    ``DowngradeRefused`` when ``target`` is not below ``current``."""
    scripts = migration_scripts()
    if target != BASE:
        _script(scripts, target)
    if current is None:
        raise DowngradeRefused("the database has no schema: nothing to downgrade")
    _database_script(scripts, current)
    if target != BASE and target not in {
        s.revision for s in scripts.iterate_revisions(current, BASE)
    }:
        raise DowngradeRefused(f"{target} is not below the database's revision {current}")
    return list(scripts.iterate_revisions(current, target))


def refuse_irreversible(steps: list[Script]) -> None:
    """Raise ``DowngradeRefused`` naming the first migration of ``steps`` that does not
    declare ``REVERSIBLE = True``."""
    for script in steps:
        if getattr(script.module, "REVERSIBLE", False) is not True:
            raise DowngradeRefused(
                f"migration {script.revision} ({Path(script.path).name}) is not reversible: "
                "downgrade refused; "
                "restore the snapshot taken before the upgrade instead"
            )


def apply_downgrade(url: str, target: str) -> list[str]:
    """Undo the migrations of the database at ``url`` above ``target`` if all declare
    themselves reversible; return their revisions, newest first. Raises
    ``DowngradeRefused`` otherwise."""
    steps = downgrade_steps(schema_revision(url), target)
    refuse_irreversible(steps)
    if steps:
        downgrade_schema(url, target)
    return [s.revision for s in steps]
