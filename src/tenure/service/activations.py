"""Read side of activations: one activation, and the activations of a license."""

from __future__ import annotations

from datetime import datetime

from tenure.domain.activations import Activation, ActivationList, activation_view
from tenure.errors import NotFound
from tenure.store.unit import Store


def get_activation(store: Store, account: str, activation: str, now: datetime) -> Activation:
    """The public view of ``activation``; raises ``NotFound`` if it does not exist."""
    with store.read() as tx:
        row = tx.projection.row(account, "activations", (activation,))
    if row is None:
        raise NotFound(f"activation {activation} not found")
    return activation_view(row, now)


def license_activations(store: Store, account: str, serial: str, now: datetime) -> ActivationList:
    """``{"activations": [...]}`` of license ``serial``, by id; ``NotFound`` for an
    unknown license."""
    with store.read() as tx:
        if tx.projection.row(account, "licenses", (serial,)) is None:
            raise NotFound(f"license {serial} not found")
        rows = tx.listings.activations_of(account, serial)
    return {"activations": [activation_view(row, now) for row in rows]}
