"""The state map seen from outside (docs/state.md): every projection row as the map
keys it (``tenure state export``), and the map's root recomputed from those rows
beside the root stored at the head and the one the latest checkpoint signed
(``tenure state root``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tenure.domain.state import TABLE_ORDER, TABLES
from tenure.errors import NotFound
from tenure.ledger.checkpoint import parse_checkpoint
from tenure.ledger.note import parse_note
from tenure.ledger.statemap import map_root, row_leaf
from tenure.store.unit import Store, Transaction


def exported_rows(tx: Transaction, account: str) -> Iterator[dict[str, Any]]:
    """``{"table", "key", "row"}`` for every projection row of ``account``, table by
    table (``TABLE_ORDER``), rows in key order."""
    for table in TABLE_ORDER:
        key_of = TABLES[table].key_of
        for row in tx.projection.rows(account, table):
            yield {"table": table, "key": list(key_of(row)), "row": row}


def export_state(store: Store, account: str) -> Iterator[dict[str, Any]]:
    """``exported_rows`` of one snapshot; ``NotFound`` when ``account`` has no ledger."""
    with store.read() as tx:
        if tx.ledger.head(account) is None:
            raise NotFound(f"account {account} has no ledger")
        yield from exported_rows(tx, account)


@dataclass(frozen=True)
class StateRoot:
    """The map's root from the rows, as stored at the head, and as last signed."""

    account: str
    size: int
    rows: int
    computed: bytes
    stored: bytes | None
    signed: bytes | None
    signed_size: int | None

    @property
    def consistent(self) -> bool:
        """The rows hash to the stored root, and to the signed one when it is of the
        head's size (a checkpoint signed before 0.3.0 states no root: no claim)."""
        if self.stored != self.computed:
            return False
        return self.signed is None or self.signed_size != self.size or self.signed == self.computed


def state_root(store: Store, account: str) -> StateRoot:
    """Recompute the root of ``account``'s map from its rows (one snapshot)."""
    with store.read() as tx:
        return state_root_in(tx, account)


def state_root_in(tx: Transaction, account: str) -> StateRoot:
    """``state_root`` in the caller's transaction; ``NotFound`` when ``account`` has
    no ledger."""
    head = tx.ledger.head(account)
    if head is None:
        raise NotFound(f"account {account} has no ledger")
    leaves = [
        row_leaf(item["table"], item["key"], item["row"]) for item in exported_rows(tx, account)
    ]
    stored = tx.state_map.root(account)
    checkpoint = tx.ledger.checkpoint(account)
    signed = None
    if checkpoint is not None:
        signed = parse_checkpoint(parse_note(checkpoint.note)[0]).state
    return StateRoot(
        account,
        head.size,
        len(leaves),
        map_root(leaves),
        stored,
        signed,
        checkpoint.size if checkpoint is not None else None,
    )
