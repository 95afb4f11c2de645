"""Ledger leaves exported by ``tenure ledger export`` and replayed into another store."""

from __future__ import annotations

import orjson
import sqlalchemy as sa

from support.shop import ACCOUNT
from tenure.domain.events import event_from_json
from tenure.ledger.merkle import Frontier, leaf_hash
from tenure.store import ledger_records, records
from tenure.store.engine import write_transaction
from tenure.store.unit import Transaction


def read_leaves(lines: str) -> list[bytes]:
    """Leaves as written by ``tenure ledger export``: one canonical event per line."""
    return [line.encode("utf-8") for line in lines.splitlines() if line]


def import_leaves(engine: sa.Engine, leaves: list[bytes], account: str = ACCOUNT) -> bytes:
    """Append exported leaves to an empty ledger of a fresh store: events, Merkle nodes
    (from ``Frontier``) and head, in one transaction. Returns the Merkle root."""
    frontier = Frontier()
    rows: list[records.EventRow] = []
    nodes: list[tuple[int, int, bytes]] = []
    for seq, leaf in enumerate(leaves):
        event = event_from_json(orjson.loads(leaf))
        assert event.seq == seq
        rows.append(
            records.EventRow(
                seq, event.id, event.type, event.subject, event.time, event.idempotency_key, leaf
            )
        )
        nodes.extend(frontier.append(leaf_hash(leaf)))
    with write_transaction(engine) as conn:
        assert ledger_records.read_head(conn, account) is None, "import into an empty account only"
        ledger_records.create_head(conn, account, f"tenure.localhost/ledger/{account}")
        ledger_records.insert_events(conn, account, rows)
        ledger_records.insert_nodes(conn, account, nodes)
        ledger_records.set_head_size(conn, account, 0, frontier.size)
    return frontier.root()


def append_placeholders(tx: Transaction, account: str, origin: str, count: int) -> int:
    """Append ``count`` placeholder events (leaves ``{"account","seq"}``, not domain
    events: for shipping, which does not replay) to ``account``'s ledger in ``tx``,
    creating it under ``origin`` if need be. Returns the first one's seq."""
    head = tx.ledger.head(account) or tx.ledger.create_head(account, origin)
    frontier = tx.ledger.frontier(account, head.size) if head.size else Frontier()
    events = [
        records.EventRow(
            seq,
            f"evt-{seq}",
            "test.event",
            None,
            "2026-06-01T12:00:00.000000Z",
            None,
            f'{{"account":"{account}","seq":{seq}}}'.encode(),
        )
        for seq in range(head.size, head.size + count)
    ]
    tx.ledger.append_events(account, events)
    tx.ledger.append_nodes(
        account, [node for e in events for node in frontier.append(leaf_hash(e.leaf))]
    )
    tx.ledger.move_head(account, head.size, head.size + count)
    return head.size
