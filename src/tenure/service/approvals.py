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

from tenure.config import Settings
from tenure.domain.approvals import DecisionFacts, status_at
from tenure.domain.commands import Command
from tenure.domain.lineage import KeyLineage, lineage_of
from tenure.domain.state import Row
from tenure.domain.timefmt import format_time
from tenure.errors import Conflict, InvalidInput, NotFound
from tenure.service.apikeys import Principal, creators
from tenure.store.unit import Store

STATUSES = frozenset({"pending", "approved", "rejected", "expired", "executed", "failed"})


def approval_view(row: Row, now: str) -> dict[str, Any]:
    """An approval as the API shows it: its row with the status as of ``now``."""
    return {**row, "status": status_at(row, now)}


def list_approvals(
    store: Store, account: str, now: str, status: str | None = None
) -> list[dict[str, Any]]:
    """The account's approvals (optionally only those of ``status`` as of ``now``),
    newest expiry first. Raises ``InvalidInput`` for an unknown status."""
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"status must be one of {sorted(STATUSES)}", field="status")
    with store.read() as tx:
        rows = tx.projection.rows(account, "approvals")
    views = [approval_view(row, now) for row in rows]
    views.sort(key=lambda view: (view["expires_at"], view["approval"]), reverse=True)
    return [view for view in views if status is None or view["status"] == status]


def get_approval(store: Store, account: str, approval: str, now: str) -> dict[str, Any]:
    """One approval with ``history``: each of its events (seq, type, time, actor,
    reason). Raises ``NotFound``."""
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


def read_row(store: Store, account: str, approval: str) -> Row:
    """The approval's projection row; ``NotFound`` without one."""
    with store.read() as tx:
        row = tx.projection.row(account, "approvals", (approval,))
    if row is None:
        raise NotFound(f"approval {approval} not found")
    return row


def decision_facts(
    store: Store, account: str, row: Row, decider: str
) -> tuple[KeyLineage, DecisionFacts]:
    """The lineage of the deciding key ``decider`` and the facts deciding the
    approval ``row`` needs (``tenure.domain.approvals.check_decider``), read in one
    transaction. Lineage and request time never change once written, so they hold
    when the writer decides. ``Conflict`` if the ledger lacks the request event."""
    approval = row["approval"]
    with store.read() as tx:
        made_by, made_at = creators(tx, account)
        events = tx.ledger.events_about(account, approval)
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


def revocations_since(store: Store, account: str, since: str) -> int:
    """``license.revoked`` events of ``account`` at or after ``since``."""
    with store.read() as tx:
        return tx.revocations.revoked_since(account, since)


def plan_has_licenses(store: Store, account: str, plan: str) -> bool:
    """Whether any license of ``account`` is on ``plan``."""
    with store.read() as tx:
        return tx.listings.plan_in_use(account, plan)


def revoke_needs_approval(
    store: Store, account: str, serial: str, threshold: int, since: str
) -> bool:
    """Whether revoking ``serial`` now would cross ``threshold`` revocations since
    ``since`` (so it becomes an approval request). An unknown or already revoked
    license needs none: the revoke itself answers 404 or 409."""
    with store.read() as tx:
        row = tx.projection.row(account, "licenses", (serial,))
    if row is None or row["status"] == "revoked":
        return False
    return revocations_since(store, account, since) + 1 > threshold


def revoke_gated(
    store: Store, settings: Settings, account: str, serial: str, now: datetime
) -> bool:
    """``revoke_needs_approval`` with the configured threshold and window
    (``TENURE_APPROVAL_REVOKE_THRESHOLD`` revocations within
    ``TENURE_APPROVAL_REVOKE_WINDOW_MINUTES`` before ``now``): what the revocation use
    case (``tenure.service.handlers.licensing.revoke_license``) asks."""
    since = format_time(now - timedelta(minutes=settings.approval_revoke_window_minutes))
    threshold = settings.approval_revoke_threshold
    return revoke_needs_approval(store, account, serial, threshold, since)


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


def find_api_key(store: Store, account: str, key_id: str) -> dict[str, Any] | None:
    """The role and ``revoked_at`` of the account's key ``key_id``, or None."""
    with store.read() as tx:
        found = tx.apikeys.get(account, key_id)
    return None if found is None else {"role": found.role, "revoked_at": found.revoked_at}
