"""Personal data at rest: sealing on append, opening on read, erasure, re-erasure.

The writer calls ``PersonalData.seal`` once an event has its final id: each
``PERSONAL`` field of the event's data (``tenure.domain.events``) is replaced by its
ciphertext under the customer's data key (``tenure.crypto.datakeys``) and
``sealed_in`` names the event. The data key is stored, wrapped under the master key,
in the database (``tx.data_keys``) in the writer's own transaction, so key and
ciphertext commit together and every server on the database can open them. The
ledger, the projection, snapshots and exports hold ciphertext only; reads open it
here, and show a customer whose key is gone (or who is erased in the projection) as
``"erased": true`` with null fields. See docs/personal-data.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field
from typing_extensions import TypedDict

from tenure.crypto.datakeys import (
    DataKeyWrap,
    legacy_key_files,
    open_field,
    read_key_file,
    remove_key_file,
    seal_field,
)
from tenure.domain.answers import closed
from tenure.domain.events import personal_fields
from tenure.domain.state import Row
from tenure.domain.timefmt import format_time
from tenure.domain.values import CustomerId
from tenure.errors import ConfigurationError, NotFound
from tenure.store.data_keys import StoredDataKey
from tenure.store.unit import Store, Transaction

_SEALED_TYPES = ("customer.created",)


@closed
class Customer(TypedDict):
    """A customer, its personal fields opened (``PersonalData.read_customer``)."""

    id: CustomerId
    name: str | None
    email: str | None
    external_id: str | None
    erased: Annotated[
        bool,
        Field(
            description="the customer's personal data was erased (its key destroyed): "
            "name and email are null"
        ),
    ]


@closed
class CustomerErasure(TypedDict):
    """A customer's erasure (``tenure.service.handlers.licensing.erase_customer``)."""

    customer: CustomerId
    erased: Literal[True]
    already: Annotated[bool, Field(description="the customer was erased before this request")]
    key_destroyed: Annotated[bool, Field(description="a data key was found and destroyed")]


def erasure(result: dict[str, Any], key_destroyed: bool) -> CustomerErasure:
    """The answer of an erasure: the ``EraseCustomer`` command's ``result`` and
    whether a data key was destroyed."""
    return {
        "customer": result["customer"],
        "erased": True,
        "already": result["already"],
        "key_destroyed": key_destroyed,
    }


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class PersonalData:
    """Seals and opens customers' personal fields with their data keys, which it keeps
    wrapped in the store (``tx.data_keys``).

    ``enabled`` False (``TENURE_ENCRYPT_PERSONAL_DATA=false``) writes them in
    plaintext, as release 0.1.0 did; reads handle both. No key is cached: a key
    another server destroyed must not open anything here afterwards.
    """

    wrap: DataKeyWrap
    enabled: bool = True
    clock: Callable[[], datetime] = field(default=_now)

    def seal(
        self, tx: Transaction, account: str, event_id: str, type_name: str, data: dict[str, Any]
    ) -> dict[str, Any]:
        """``data`` of a draft with its personal fields sealed under ``event_id``. The
        customer's data key is created in ``tx`` if it has none, so it commits with
        the ciphertext or not at all."""
        if not self.enabled or type_name not in _SEALED_TYPES:
            return data
        fields = [f for f in sorted(personal_fields(type_name, 2)) if isinstance(data[f], str)]
        if not fields:
            return data
        key = self._key_for(tx, account, data["customer"])
        sealed = {f: seal_field(key, event_id, f, data[f]) for f in fields}
        return {**data, **sealed, "sealed_in": event_id}

    def _key_for(self, tx: Transaction, account: str, customer: str) -> bytes:
        """The customer's data key: the stored one (a key left by a submission that
        failed after sealing), else a new one stored in ``tx``."""
        while True:
            key = self._stored_key(tx, account, customer)
            if key is not None:
                return key
            key, wrapped = self.wrap.new_key(account, customer)
            stored = StoredDataKey(customer, wrapped, format_time(self.clock()))
            if tx.data_keys.add(account, stored):
                return key

    def _stored_key(self, tx: Transaction, account: str, customer: str) -> bytes | None:
        """The customer's data key unwrapped; None if it has none. ``ConfigurationError``
        for a row that does not unwrap (another master key, a row moved)."""
        stored = tx.data_keys.get(account, customer)
        if stored is None:
            return None
        where = f"the data key of {account}/{customer} in the database"
        return self.wrap.unwrap(account, customer, stored.wrapped, where)

    def open_sealed(self, tx: Transaction, account: str, row: Row) -> dict[str, str | None] | None:
        """The plaintext fields of a ``customer_sealed`` row; None if its key is gone."""
        key = self._stored_key(tx, account, row["customer"])
        if key is None:
            return None
        return {
            name: open_field(key, row["sealed_in"], name, value) if value else None
            for name in ("name", "email")
            if (value := row[name]) is not None
        }

    def opener(
        self, tx: Transaction, account: str
    ) -> Callable[[Row], dict[str, str | None] | None]:
        """``open_sealed`` for one account in ``tx`` (the commands' ``Context.open_sealed``)."""
        return lambda row: self.open_sealed(tx, account, row)

    def read_customer(self, store: Store, account: str, customer: str) -> Customer:
        """``{"id", "name", "email", "external_id", "erased"}`` of a customer, its
        personal fields opened; erased (or keyless) customers show them as null.
        Raises ``NotFound`` (field ``customer``)."""
        opened: dict[str, str | None] | None = {}
        with store.read() as tx:
            row = tx.projection.row(account, "customers", (customer,))
            sealed = tx.projection.row(account, "customer_sealed", (customer,))
            erased = tx.projection.row(account, "customer_erasures", (customer,)) is not None
            if sealed is not None and not erased:
                opened = self.open_sealed(tx, account, sealed)
        if row is None:
            raise NotFound(f"customer {customer} not found", field="customer")
        erased = erased or opened is None
        shown = opened or {}
        return {
            "id": row["customer"],
            "name": None if erased else shown.get("name", row["name"]),
            "email": None if erased else shown.get("email", row["email"]),
            "external_id": row["external_id"],
            "erased": erased,
        }

    def has_key(self, store: Store, account: str, customer: str) -> bool:
        """Whether the customer's data key is stored."""
        with store.read() as tx:
            return tx.data_keys.get(account, customer) is not None

    def destroy(self, store: Store, account: str, customer: str) -> bool:
        """Delete the customer's data key (crypto-shredding); True if there was one."""
        with store.shared_write() as tx:
            return tx.data_keys.delete(account, customer)


def drop_erased_keys(tx: Transaction, account: str | None = None) -> list[tuple[str, str]]:
    """Delete in ``tx`` every data key of a customer the projection in ``tx`` says is
    erased (of ``account``, or of every account); returns the (account, customer)
    pairs whose key it deleted."""
    erased: dict[str, set[str]] = {}
    for owner, customer in tx.listings.erased_customers():
        if account is None or owner == account:
            erased.setdefault(owner, set()).add(customer)
    # Only the keys that are there: every start runs this, and erasures accumulate.
    present = [(a, c) for a in sorted(erased) for c in tx.data_keys.customers(a) if c in erased[a]]
    return [(a, c) for a, c in present if tx.data_keys.delete(a, c)]


def reapply_erasures(store: Store) -> list[tuple[str, str]]:
    """Destroy every data key still present for a customer the ledger says is erased
    (a database or key table restored from an older backup, an erasure written by
    0.2.0 whose key file outlived it). Returns the (account, customer) pairs whose
    key it deleted."""
    with store.shared_write() as tx:
        return drop_erased_keys(tx)


def import_key_files(store: Store, wrap: DataKeyWrap, directory: Path) -> list[tuple[str, str]]:
    """Move the data key files of release 0.2.0 (``<directory>/<account>/<customer>.key``)
    into the database, then delete the files; returns the (account, customer) pairs
    imported. A file of an erased customer is deleted without import.

    Every file must unwrap under the master key for its customer, and a key the
    database holds already must be the same key; else ``ConfigurationError`` naming
    the file, and nothing is imported or deleted. Files are deleted only once the
    import has committed, so a crash in between leaves files that the next start
    finds already imported."""
    files = list(legacy_key_files(directory))
    if not files:
        return []
    imported = []
    with store.shared_write() as tx:
        erased = set(tx.listings.erased_customers())
        for account, customer, path in files:
            if (account, customer) in erased:
                continue
            where = f"data key file {path}"
            wrapped = read_key_file(path)
            key = wrap.unwrap(account, customer, wrapped, where)
            created = format_time(datetime.fromtimestamp(path.stat().st_mtime, UTC))
            if tx.data_keys.add(account, StoredDataKey(customer, wrapped, created)):
                imported.append((account, customer))
                continue
            held = tx.data_keys.get(account, customer)
            in_database = f"the data key of {account}/{customer} in the database"
            if held is None or wrap.unwrap(account, customer, held.wrapped, in_database) != key:
                raise ConfigurationError(
                    f"{where} holds another key for {customer} than the database does: "
                    "nothing was imported, so that neither is lost (docs/personal-data.md)"
                )
    for _, _, path in files:
        remove_key_file(path)
    return imported
