"""What the use cases and the entrypoints get from the composition root: the
settings, the store, the key stores, the sidecar and personal data, and the objects
built from them (the ledger writer, the token key ring, token minting).

``tenure.app.runtime.Runtime`` builds one from settings and adds the wiring of the
layers above (shipper, mirror, drills); routes, the console and operations type
against this class, so they never import the composition root.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from tenure.config import Settings
from tenure.crypto.keystore import LedgerKeyStore, LicenseKeys, TokenKeyStore
from tenure.ledger.note import NoteSigner
from tenure.service.keyring import KeyRing
from tenure.service.ledger import CheckpointPolicy, Ledger
from tenure.service.personal import PersonalData
from tenure.service.sidecar import Sidecar
from tenure.service.state_guard import StateGuard
from tenure.service.tokens import Tokens
from tenure.store.unit import SqlStore
from tenure.store.writing import SqlWriterLink


@dataclass
class ServiceContext:
    """The pieces one process needs, built once from settings (by ``Runtime.open``)."""

    settings: Settings
    store: SqlStore
    """The database (SQLite or PostgreSQL): one per runtime."""
    keystore: LedgerKeyStore
    token_keys: TokenKeyStore
    license_keys: LicenseKeys
    sidecar: Sidecar | None
    personal: PersonalData | None = None
    """Seals and opens customers' personal data with their data keys (wrapped in the
    database under the master key)."""
    state_guard: StateGuard = field(default_factory=StateGuard)
    """The accounts whose stored state this process found unproven (docs/state.md)."""

    def ledger(
        self,
        clock: Callable[[], datetime] | None = None,
        random_bytes: Callable[[int], bytes] | None = None,
        license_key_hash: Callable[[str, str], str] | None = None,
    ) -> Ledger:
        """A ledger writer (not yet started) over this runtime's store."""
        s = self.settings
        extra = {"random_bytes": random_bytes} if random_bytes else {}
        return Ledger(
            self.store,
            SqlWriterLink(self.store.engine),
            self.keystore,
            license_key_hash or self.license_keys.key_hash,
            s.ledger_origin_prefix,
            sidecar=self.sidecar,
            policy=CheckpointPolicy(s.checkpoint_every_events, s.checkpoint_interval_seconds),
            clock=clock,
            max_batch=s.write_batch_max,
            personal=self.personal,
            guard=self.state_guard,
            **extra,
        )

    def keyring(self) -> KeyRing:
        """The token signing key ring over this runtime's store and key files."""
        return KeyRing(self.store, self.token_keys)

    def tokens(self) -> Tokens:
        """Offline token minting, with issuers ``<ledger origin prefix>/<account>``."""
        return Tokens(self.store, self.keyring(), self.settings.ledger_origin_prefix)

    def ledger_signer(self, account: str) -> tuple[str, NoteSigner]:
        """The origin of ``account``'s ledger and the signer whose key name it is: the
        origin its head records (a new epoch has its own), or the configured one."""
        with self.store.read() as tx:
            head = tx.ledger.head(account)
        origin = head.origin if head else self.settings.ledger_origin(account)
        return origin, self.keystore.ledger_signer(origin)

    def close(self) -> None:
        self.store.close()
