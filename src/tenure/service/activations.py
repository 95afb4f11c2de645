"""Read side of activations: one activation, and the activations of a license."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from tenure.domain.activations import activation_view
from tenure.errors import NotFound
from tenure.store import sql
from tenure.store import tables as t
from tenure.store.engine import read_transaction


def get_activation(engine: sa.Engine, account: str, activation: str, now: datetime) -> Any:
    """The public view of ``activation``; raises ``NotFound`` if it does not exist."""
    with read_transaction(engine) as conn:
        row = sql.read_row(conn, account, "activations", (activation,))
    if row is None:
        raise NotFound(f"activation {activation} not found")
    return activation_view(row, now)


def license_activations(
    engine: sa.Engine, account: str, serial: str, now: datetime
) -> dict[str, Any]:
    """``{"activations": [...]}`` of license ``serial``, by id; ``NotFound`` for an
    unknown license."""
    table = t.projection["activations"]
    with read_transaction(engine) as conn:
        if sql.read_row(conn, account, "licenses", (serial,)) is None:
            raise NotFound(f"license {serial} not found")
        rows = conn.execute(
            sa.select(table)
            .where(table.c.account == account, table.c.serial == serial)
            .order_by(table.c.activation)
        ).all()
    views = [activation_view(sql.row_from_sql("activations", row[1:]), now) for row in rows]
    return {"activations": views}
