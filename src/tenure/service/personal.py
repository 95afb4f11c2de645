"""Personal data at rest: sealing on append, opening on read, erasure, re-erasure.

The writer calls ``PersonalData.seal`` once an event has its final id: each
``PERSONAL`` field of the event's data (``tenure.domain.events``) is replaced by its
ciphertext under the customer's data key (``tenure.crypto.datakeys``) and
``sealed_in`` names the event. The ledger, the projection, snapshots and exports
therefore hold ciphertext only; reads open it here, and show a customer whose key
is gone (or who is erased in the projection) as ``"erased": true`` with null fields.
See docs/personal-data.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Field
from typing_extensions import TypedDict

from tenure.crypto.datakeys import DataKeyStore, open_field, seal_field
from tenure.domain.answers import closed
from tenure.domain.events import personal_fields
from tenure.domain.state import Row
from tenure.domain.values import CustomerId
from tenure.errors import NotFound
from tenure.store.unit import Store

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


@dataclass(frozen=True)
class PersonalData:
    """Seals and opens customers' personal fields with their data keys.

    ``enabled`` False (``TENURE_ENCRYPT_PERSONAL_DATA=false``) writes them in
    plaintext, as release 0.1.0 did; reads handle both.
    """

    datakeys: DataKeyStore
    enabled: bool = True

    def seal(
        self, account: str, event_id: str, type_name: str, data: dict[str, Any]
    ) -> dict[str, Any]:
        """``data`` of a draft with its personal fields sealed under ``event_id``.
        Creates the customer's data key (written to disk before any ciphertext)."""
        if not self.enabled or type_name not in _SEALED_TYPES:
            return data
        fields = [f for f in sorted(personal_fields(type_name, 2)) if isinstance(data[f], str)]
        if not fields:
            return data
        key = self.datakeys.create(account, data["customer"])
        sealed = {f: seal_field(key, event_id, f, data[f]) for f in fields}
        return {**data, **sealed, "sealed_in": event_id}

    def open_sealed(self, account: str, row: Row) -> dict[str, str | None] | None:
        """The plaintext fields of a ``customer_sealed`` row; None if its key is gone."""
        key = self.datakeys.get(account, row["customer"])
        if key is None:
            return None
        return {
            name: open_field(key, row["sealed_in"], name, value) if value else None
            for name in ("name", "email")
            if (value := row[name]) is not None
        }

    def opener(self, account: str) -> Callable[[Row], dict[str, str | None] | None]:
        """``open_sealed`` for one account (the commands' ``Context.open_sealed``)."""
        return lambda row: self.open_sealed(account, row)

    def read_customer(self, store: Store, account: str, customer: str) -> Customer:
        """``{"id", "name", "email", "external_id", "erased"}`` of a customer, its
        personal fields opened; erased (or keyless) customers show them as null.
        Raises ``NotFound`` (field ``customer``)."""
        with store.read() as tx:
            row = tx.projection.row(account, "customers", (customer,))
            sealed = tx.projection.row(account, "customer_sealed", (customer,))
            erased = tx.projection.row(account, "customer_erasures", (customer,)) is not None
        if row is None:
            raise NotFound(f"customer {customer} not found", field="customer")
        opened: dict[str, str | None] | None = {}
        if sealed is not None and not erased:
            opened = self.open_sealed(account, sealed)
        erased = erased or opened is None
        shown = opened or {}
        return {
            "id": row["customer"],
            "name": None if erased else shown.get("name", row["name"]),
            "email": None if erased else shown.get("email", row["email"]),
            "external_id": row["external_id"],
            "erased": erased,
        }


def reapply_erasures(store: Store, datakeys: DataKeyStore) -> list[tuple[str, str]]:
    """Destroy every data key still present for a customer the ledger says is erased
    (a key store restored from an older backup, a crash between the erasure event and
    the key's deletion). Returns the (account, customer) pairs whose key it deleted."""
    with store.read() as tx:
        pairs = tx.listings.erased_customers()
    return [(a, c) for a, c in pairs if datakeys.destroy(a, c)]
