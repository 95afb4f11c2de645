"""Wiring: from ``Settings`` to an engine, key stores, sidecar and ledger writer
(``ServiceContext``), and the workers of the layers above it."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from tenure.config import Settings
from tenure.crypto.datakeys import DataKeyWrap
from tenure.crypto.files import make_private_dir
from tenure.crypto.keystore import (
    FileKeyStore,
    LedgerKeyStore,
    LicenseKeys,
    TokenKeys,
    TokenKeyStore,
    derive_key,
    load_master_key,
)
from tenure.durability import epochs, upgrades
from tenure.durability.drill import drill_entry, run_drill
from tenure.durability.migration import read_state
from tenure.durability.mirror import Mirror
from tenure.durability.shipping import Shipper, SnapshotPolicy
from tenure.durability.sites import SiteUnavailable, open_site, open_sites
from tenure.durability.upgrades import schema_head
from tenure.errors import ConfigurationError, TenureError
from tenure.ledger.checkpoint import open_checkpoint
from tenure.ledger.note import NoteVerifier
from tenure.ops.jobs import account_job
from tenure.service.context import ServiceContext
from tenure.service.ledger import AuditRequest, Ledger
from tenure.service.personal import PersonalData, import_key_files, reapply_erasures
from tenure.service.sidecar import Sidecar
from tenure.service.state_guard import StateGuard
from tenure.store.databases import open_store, sqlite_file
from tenure.store.unit import SqlStore
from tenure.workers import Worker

_log = logging.getLogger("tenure.schema")


class SchemaUse(Enum):
    """What ``Runtime.open`` does with the schema of the database it opens. Each but
    ``AS_IS`` refuses a schema newer than this release's (``SchemaAhead``)."""

    SERVE = "serve"
    """The service: with ``upgrade_on_start``, give a new database its schema and
    upgrade an older one (after the pre-upgrade snapshot, logged); without it, refuse
    both (``SchemaBehind``)."""
    CREATE = "create"
    """A command that writes: give a new database its schema; refuse an older schema
    (``SchemaBehind``: one line, run ``tenure db upgrade``)."""
    EXISTING = "existing"
    """A command that reads or repairs: refuse a missing database or one without a
    schema (``ConfigurationError``) and an older schema (``SchemaBehind``)."""
    AS_IS = "as_is"
    """The snapshot ``upgrade_schema`` takes: the schema as it is, whatever it is."""


@dataclass(frozen=True)
class SchemaUpgrade:
    """What ``upgrade_schema`` did."""

    before: upgrades.SchemaStatus
    snapshots: list[upgrades.SnapshotTaken]
    sites: list[str]
    """Where the snapshots went (none for a database that had no schema)."""


def key_stores(settings: Settings, master: bytes) -> tuple[LedgerKeyStore, TokenKeyStore]:
    """The ledger and token key stores ``settings.key_store`` chooses: sealed files
    under ``<data-dir>/keys`` (default), or a PKCS#11 token (docs/keys.md)."""
    if settings.key_store == "pkcs11":
        from tenure.crypto.pkcs11 import Pkcs11KeyStore

        if any((settings.data_dir / "keys").glob("*.key")):
            raise ConfigurationError(
                f"{settings.data_dir / 'keys'} holds file-store signing keys: switching this "
                "data dir to TENURE_KEY_STORE=pkcs11 would change its keys (see docs/keys.md)"
            )
        pin = settings.pkcs11_pin.get_secret_value() if settings.pkcs11_pin else None
        store = Pkcs11KeyStore.open(str(settings.pkcs11_module), settings.pkcs11_token_label, pin)
        return store, store
    directory = settings.data_dir / "keys"
    return FileKeyStore(directory, master), TokenKeys(directory, master)


def _own_key(keystore: LedgerKeyStore, verifier: NoteVerifier) -> bool:
    """Whether ``verifier`` is the key store's own key of that name: a verifier key
    written into the database by anyone else is not trusted by the service."""
    if not keystore.has_ledger_key(verifier.name):
        return False
    return keystore.ledger_signer(verifier.name).verifier.key_string() == verifier.key_string()


def _personal_data(settings: Settings, store: SqlStore, master: bytes) -> PersonalData:
    """Personal data sealed under the data keys in ``store``. On a database at the
    schema head, the key files of 0.2.0 in ``<data-dir>/datakeys`` are moved into it
    first, then every erasure the ledger records is re-applied: keys older than the
    ledger (a database or key files restored from a backup) must not bring erased
    personal data back."""
    personal = PersonalData(DataKeyWrap(master), settings.encrypt_personal_data)
    if store.schema_revision() == schema_head():
        import_key_files(store, personal.wrap, settings.data_dir / "datakeys")
        reapply_erasures(store)
    return personal


@dataclass
class Runtime(ServiceContext):
    """The process's ``ServiceContext``, opened from settings, and the wiring of the
    durability and operations workers over it."""

    @classmethod
    def open(
        cls, settings: Settings, migrate: bool = True, *, schema: SchemaUse | None = None
    ) -> Runtime:
        """Open the database and the keys, doing with its schema what ``schema`` says
        (default: ``SERVE`` with ``migrate``, else ``EXISTING``). A schema this release
        will not use raises before anything is written: ``SchemaBehind`` (one line
        naming both revisions: run ``tenure db upgrade``) or ``SchemaAhead``."""
        use = schema or (SchemaUse.SERVE if migrate else SchemaUse.EXISTING)
        url = settings.database()
        path = sqlite_file(url)
        existing = use in (SchemaUse.EXISTING, SchemaUse.AS_IS)
        if existing and path is not None and not path.exists():
            raise ConfigurationError(f"no Tenure database at {path}; check --data-dir or --db")
        make_private_dir(settings.data_dir)
        if use is not SchemaUse.AS_IS:
            _bring_schema(settings, use)
        store = open_store(url)
        secret = settings.master_key.get_secret_value() if settings.master_key else None
        try:
            master = load_master_key(settings.data_dir, secret)
            keystore, token_keys = key_stores(settings, master)
            personal = _personal_data(settings, store, master)
        except TenureError:
            store.close()
            raise
        return cls(
            settings,
            store,
            keystore,
            token_keys,
            LicenseKeys(derive_key(master, "license-keys")),
            Sidecar.beside(path) if path else Sidecar(settings.data_dir / "checkpoints"),
            personal,
            StateGuard(confirm=lambda verifier: _own_key(keystore, verifier)),
        )

    def shipper(self) -> Shipper:
        """Ships new events to the configured sites (not started)."""
        path = sqlite_file(self.settings.database())
        # Without a database file (PostgreSQL) the lock lives in the data dir, which
        # the processes of one host share (as they share the sidecar).
        lock = (
            path.with_name(path.name + "-shipper.lock")
            if path
            else self.settings.data_dir / "shipper.lock"
        )
        s = self.settings
        sites = open_sites(s.site_urls())

        interval = s.snapshot_interval_minutes * 60
        policy = SnapshotPolicy(s.snapshot_every_events, interval, self.ledger_signer)
        return Shipper(self.store, sites, s.ship_interval_seconds, lock, policy)

    def mirror(self) -> Mirror | None:
        """The backend migration's mirror (not started), or None when no migration
        in ``<data-dir>/migration.json`` is mirroring (see docs/migration.md)."""
        state = read_state(self.settings.data_dir)
        ends = state.mirror if state else None
        return Mirror(self.store, ends[1], self.settings.data_dir) if ends else None

    def guard_against_sites(self) -> list[str]:
        """Make the writer refuse to append where a site proves the store is behind.

        For each account, a site's checkpoint that verifies with the account's key
        and is larger than the local ledger is written to the sidecar (unless the
        sidecar already holds a larger one): appending or signing would fork the
        log, so the writer refuses until the events are restored. Returns a line per
        account found behind."""
        s = self.settings
        if self.sidecar is None:
            return []
        found = []
        for site in open_sites(s.site_urls()):
            with self.store.read() as tx:
                heads = {a: tx.ledger.head(a) for a in tx.ledger.accounts()}
            for account, head in heads.items():
                origin = head.origin if head else s.ledger_origin(account)
                where = epochs.namespace(account, epochs.epoch_of(origin))
                try:
                    note = site.get(f"{where}/checkpoint")
                except SiteUnavailable as exc:  # a backup site that is down must not
                    found.append(f"{account}: {site.url} could not be read: {exc}")
                    continue  # keep the service from starting
                if note is None or not self.keystore.has_ledger_key(origin):
                    continue
                verifier = self.keystore.ledger_signer(origin).verifier
                signed = open_checkpoint(note.decode(), [verifier])
                local = head.size if head else 0
                kept = self.sidecar.read(account)
                if signed.size > local and (kept is None or kept.size < signed.size):
                    self.sidecar.write(account, note.decode())
                    found.append(
                        f"{account}: {site.url} holds a checkpoint of {signed.size} events, "
                        f"this store {local}: restore before appending"
                    )
                else:
                    # Every proof of the account from now on checks that the store's
                    # history is the one the site signed (a rewritten one is refused).
                    self.state_guard.keep_outside(account, note.decode())
        return found

    def state_checks(self) -> Worker:
        """Proves every account's stored state every ``state_verify_minutes`` (not
        started; never for 0): ``StateGuard`` refuses the unproven ones."""
        interval = self.settings.state_verify_minutes * 60

        def verify(account: str) -> None:
            self.state_guard.verify(self.store, account, self.sidecar)

        return account_job("tenure-state-verify", self.store, verify, interval)

    def drills(self, ledger: Ledger) -> Worker:
        """Drills of every account from the first site, every
        ``drill_interval_minutes`` (not started; does nothing without sites or interval)."""
        s = self.settings
        urls = s.site_urls()
        interval = s.drill_interval_minutes * 60 if urls else 0.0

        def drill(account: str) -> None:
            verifier = self.ledger_signer(account)[1].verifier
            report = run_drill(self.store, open_site(urls[0]), account, [verifier])
            detail = {"rto_ms": round(report.rto_seconds * 1000)}
            entry = drill_entry(report, "system", "internal", detail)
            ledger.execute(AuditRequest((entry,)))

        return account_job("tenure-drill", self.store, drill, interval, s.data_dir)


def _bring_schema(settings: Settings, use: SchemaUse) -> None:
    """Check the schema of the database ``settings`` name as ``use`` says, and create
    or upgrade it where ``use`` says so (see ``SchemaUse``)."""
    url = settings.database()
    status = upgrades.schema_status(url)
    if not status.upgrade_pending:
        return
    new = status.current is None
    upgrading = use is SchemaUse.SERVE and settings.upgrade_on_start
    if new and use is SchemaUse.EXISTING:
        raise ConfigurationError(f"{url} is not a Tenure database (no schema revision)")
    if new and (upgrading or use is SchemaUse.CREATE):
        upgrades.apply_upgrade(url)  # a new database: nothing to snapshot
    elif upgrading:
        _upgrade_on_start(settings, status)
    else:
        raise upgrades.schema_behind(status)


def _upgrade_on_start(settings: Settings, status: upgrades.SchemaStatus) -> None:
    """``upgrade_schema``, told in the service's log: before (it may take a while),
    each snapshot, and the upgrade."""
    sites = upgrades.pre_upgrade_sites(settings.site_urls(), settings.data_dir)
    _log.info(
        "database schema %s is behind %s: snapshotting every account to %s before upgrading",
        status.current,
        status.head,
        ", ".join(sites),
    )
    done = upgrade_schema(settings)
    for taken in done.snapshots:
        _log.info(
            "pre-upgrade snapshot of %s at %d events: %s (to %s)",
            taken.account,
            taken.size,
            taken.path,
            ", ".join(done.sites),
            extra={"account": taken.account, "size": taken.size, "path": taken.path},
        )
    _log.warning(
        "upgraded database schema %s -> %s on start (applied %s); "
        "the state from before is in the pre-upgrade snapshot at %s",
        done.before.current,
        done.before.head,
        ", ".join(done.before.pending),
        ", ".join(done.sites),
        extra={"schema_from": done.before.current, "schema_to": done.before.head},
    )


def upgrade_schema(settings: Settings) -> SchemaUpgrade:
    """Bring the database ``settings`` name to this release's head, as ``tenure db
    upgrade`` and the service on start do. A database with a schema may hold events:
    first every account's events and a signed snapshot go to every site (without
    sites, to ``<data-dir>/pre-upgrade/``), then the migrations run. Raises what the
    snapshot raises, before migrating anything; ``SchemaAhead`` for a newer schema."""
    url = settings.database()
    before = upgrades.schema_status(url)
    if not before.upgrade_pending:
        return SchemaUpgrade(before, [], [])
    sites: list[str] = []
    taken: list[upgrades.SnapshotTaken] = []
    if before.current is not None:
        sites = upgrades.pre_upgrade_sites(settings.site_urls(), settings.data_dir)
        old = Runtime.open(settings, schema=SchemaUse.AS_IS)
        try:
            with tempfile.TemporaryDirectory(dir=settings.data_dir, prefix=".upgrade-") as scratch:
                taken = upgrades.snapshot_before_upgrade(
                    url, old.ledger_signer, open_sites(sites), Path(scratch)
                )
        finally:
            old.close()
    upgrades.apply_upgrade(url)
    return SchemaUpgrade(before, taken, sites)
