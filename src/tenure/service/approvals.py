"""Approvals (the two-person rule, docs/approvals.md): reading requests, the
thresholds that decide which actions need one, and recording what an executed
approval came to. The domain rules are in ``tenure.domain.approvals``."""

from __future__ import annotations

from typing import Any

import orjson
import sqlalchemy as sa

from tenure.domain.approvals import DecisionFacts, status_at
from tenure.domain.lineage import KeyLineage, lineage_of
from tenure.domain.state import Row
from tenure.errors import Conflict, InvalidInput, NotFound
from tenure.service.apikeys import creators
from tenure.store import sql
from tenure.store import tables as t
from tenure.store.engine import read_transaction

STATUSES = frozenset({"pending", "approved", "rejected", "expired", "executed", "failed"})


def approval_view(row: Row, now: str) -> dict[str, Any]:
    """An approval as the API shows it: its row with the status as of ``now``."""
    return {**row, "status": status_at(row, now)}


def list_approvals(
    engine: sa.Engine, account: str, now: str, status: str | None = None
) -> list[dict[str, Any]]:
    """The account's approvals (optionally only those of ``status`` as of ``now``),
    newest expiry first. Raises ``InvalidInput`` for an unknown status."""
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"status must be one of {sorted(STATUSES)}", field="status")
    with read_transaction(engine) as conn:
        rows = sql.projection_rows(conn, account, "approvals")
    views = [approval_view(row, now) for row in rows]
    views.sort(key=lambda view: (view["expires_at"], view["approval"]), reverse=True)
    return [view for view in views if status is None or view["status"] == status]


def get_approval(engine: sa.Engine, account: str, approval: str, now: str) -> dict[str, Any]:
    """One approval with ``history``: each of its events (seq, type, time, actor,
    reason). Raises ``NotFound``."""
    with read_transaction(engine) as conn:
        row = sql.read_row(conn, account, "approvals", (approval,))
        events = sql.events_about(conn, account, approval) if row is not None else []
    if row is None:
        raise NotFound(f"approval {approval} not found")
    history = []
    for seq, leaf in events:
        event = orjson.loads(leaf)
        if event["type"].startswith("approval."):
            keep = ("type", "time", "actor", "reason")
            history.append({"seq": seq, **{k: event[k] for k in keep}})
    return {**approval_view(row, now), "history": history}


def read_row(engine: sa.Engine, account: str, approval: str) -> Row:
    """The approval's projection row; ``NotFound`` without one."""
    with read_transaction(engine) as conn:
        row = sql.read_row(conn, account, "approvals", (approval,))
    if row is None:
        raise NotFound(f"approval {approval} not found")
    return row


def decision_facts(
    engine: sa.Engine, account: str, row: Row, decider: str
) -> tuple[KeyLineage, DecisionFacts]:
    """The lineage of the deciding key ``decider`` and the facts deciding the
    approval ``row`` needs (``tenure.domain.approvals.check_decider``), read in one
    transaction. Lineage and request time never change once written, so they hold
    when the writer decides. ``Conflict`` if the ledger lacks the request event."""
    approval = row["approval"]
    with read_transaction(engine) as conn:
        made_by, made_at = creators(conn, account)
        events = sql.events_about(conn, account, approval)
    requested = [orjson.loads(leaf) for _, leaf in events[:1]]
    if not requested or requested[0]["type"] != "approval.requested":
        raise Conflict(f"approval {approval} has no approval.requested event")
    target = row["payload"]["key_id"] if row["action"] == "apikey.revoke" else None
    facts = DecisionFacts(
        requested[0]["time"],
        lineage_of(row["requested_by"], made_by, made_at),
        None if target is None else lineage_of(target, made_by, made_at),
    )
    return lineage_of(decider, made_by, made_at), facts


def revocations_since(engine: sa.Engine, account: str, since: str) -> int:
    """``license.revoked`` events of ``account`` at or after ``since``.

    Event times never run backwards within a ledger, so the window starts at a seq
    found by bisection on the primary key; only the window's events are counted."""
    events = t.ledger_events.c
    with read_transaction(engine) as conn:
        low = sql.first_seq_since(conn, account, since)
        count = conn.scalar(
            sa.select(sa.func.count())
            .select_from(t.ledger_events)
            .where(
                events.account == account,
                events.seq >= low,
                events.type == "license.revoked",
            )
        )
    return int(count or 0)


def plan_has_licenses(engine: sa.Engine, account: str, plan: str) -> bool:
    """Whether any license of ``account`` is on ``plan``."""
    licenses = t.projection["licenses"].c
    with read_transaction(engine) as conn:
        found = conn.scalar(
            sa.select(licenses.serial)
            .where(licenses.account == account, licenses.plan == plan)
            .limit(1)
        )
    return found is not None


def revoke_needs_approval(
    engine: sa.Engine, account: str, serial: str, threshold: int, since: str
) -> bool:
    """Whether revoking ``serial`` now would cross ``threshold`` revocations since
    ``since`` (so it becomes an approval request). An unknown or already revoked
    license needs none: the revoke itself answers 404 or 409."""
    with read_transaction(engine) as conn:
        row = sql.read_row(conn, account, "licenses", (serial,))
    if row is None or row["status"] == "revoked":
        return False
    return revocations_since(engine, account, since) + 1 > threshold


PRIVILEGED_ROLES = frozenset({"owner", "admin"})
"""Roles whose keys another principal may revoke only with a second approval."""


def find_api_key(engine: sa.Engine, account: str, key_id: str) -> dict[str, Any] | None:
    """The role and ``revoked_at`` of the account's key ``key_id``, or None."""
    keys = t.api_keys.c
    with read_transaction(engine) as conn:
        row = conn.execute(
            sa.select(keys.role, keys.revoked_at).where(keys.account == account, keys.id == key_id)
        ).first()
    return None if row is None else {"role": row.role, "revoked_at": row.revoked_at}
