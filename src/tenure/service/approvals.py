"""Approvals (the two-person rule, docs/approvals.md): reading requests, the
thresholds that decide which actions need one, the request itself, and the registry
of what executes an approved action. The domain rules are in
``tenure.domain.approvals``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

import orjson
import sqlalchemy as sa

from tenure.config import Settings
from tenure.domain.approvals import DecisionFacts, RequestApproval, status_at
from tenure.domain.commands import Command
from tenure.domain.events import Actor
from tenure.domain.lineage import KeyLineage, lineage_of
from tenure.domain.state import Row
from tenure.domain.timefmt import format_time
from tenure.errors import Conflict, InvalidInput, NotFound
from tenure.service.apikeys import Principal, creators
from tenure.service.ledger import Submission
from tenure.store import sql
from tenure.store import tables as t
from tenure.store.engine import read_transaction
from tenure.store.unit import SqlStore, Store

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
    store: Store = SqlStore(engine)
    with store.read() as tx:
        row = tx.projection.row(account, "approvals", (approval,))
        events = tx.ledger.events_about(account, approval) if row is not None else []
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


def revoke_gated(
    engine: sa.Engine, settings: Settings, account: str, serial: str, now: datetime
) -> bool:
    """``revoke_needs_approval`` with the configured threshold and window
    (``TENURE_APPROVAL_REVOKE_THRESHOLD`` revocations within
    ``TENURE_APPROVAL_REVOKE_WINDOW_MINUTES`` before ``now``). The API's revoke route
    and the console's revoke action ask it."""
    since = format_time(now - timedelta(minutes=settings.approval_revoke_window_minutes))
    threshold = settings.approval_revoke_threshold
    return revoke_needs_approval(engine, account, serial, threshold, since)


def approval_request(
    settings: Settings,
    caller: Principal,
    action: str,
    target: str,
    payload: dict[str, Any],
    reason: str | None,
) -> Submission:
    """The submission that records an ``approval.requested`` for ``action`` by
    ``caller``, expiring after ``TENURE_APPROVAL_TTL_HOURS``. ``payload`` is what
    executing it needs: never secrets or personal data."""
    ttl = settings.approval_ttl_hours * 3600
    command = RequestApproval(action, target, caller.id, ttl, payload)
    actor = Actor(caller.id, caller.role, caller.auth)
    return Submission(caller.account, command, actor, reason=reason)


@dataclass(frozen=True)
class Execution:
    """What executing an approved action came to: its ``result`` and, when the
    action itself belongs in the ledger (a restore), the command to append with
    ``approval.executed``."""

    result: dict[str, Any]
    also: Command | None = None


Via = TypeVar("Via")
Executor = Callable[[Via, Principal, Mapping[str, Any]], Awaitable[Execution]]
"""Executes one approved action: given how the decision arrived (``Via``: the HTTP
request today), the deciding principal and the approval's payload."""


class Executors(Generic[Via]):
    """Approved action → what executes it (the actions that are not ledger commands:
    key rotation, API key revocation, restore).

    The composition root (``tenure.app``) registers them, so that deciding an
    approval never imports the layers that implement an action (a restore lives in
    ``tenure.durability``, above this one)."""

    def __init__(self) -> None:
        self._by_action: dict[str, Executor[Via]] = {}

    def register(self, action: str, executor: Executor[Via]) -> None:
        """Make ``executor`` run approved ``action``s; an action registers once."""
        if action in self._by_action:
            raise ValueError(f"an executor of {action!r} is already registered")
        self._by_action[action] = executor

    async def execute(
        self, action: str, via: Via, caller: Principal, payload: Mapping[str, Any]
    ) -> Execution:
        """Run the executor of ``action``; ``KeyError`` when none is registered (a
        wiring error: every gated action that is not a ledger command has one)."""
        return await self._by_action[action](via, caller, payload)


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
