"""The use cases of the catalog: diff and apply a catalog document, and ask to retire
a plan. The API's catalog routes call them.

Two changes need a second principal's approval (docs/approvals.md): a new version
of a plan that takes entitlements away from licenses already on it, and retiring a
plan. Their use cases answer the approval request instead of acting.
"""

from __future__ import annotations

import orjson

from tenure.config import Settings
from tenure.domain.catalog import Catalog, CatalogDiff
from tenure.domain.events import Actor
from tenure.errors import NotFound
from tenure.service import approvals
from tenure.service.apikeys import Principal
from tenure.service.catalog import apply_catalog as apply_parsed
from tenure.service.catalog import diff_against_state, parse_catalog
from tenure.service.handlers import Submit
from tenure.service.handlers.approvals import request_approval
from tenure.service.views import ApprovalPending
from tenure.store.unit import Store

MAX_PLAN_CODE = 64


def _takes_away_from_licenses(store: Store, account: str, catalog: Catalog) -> list[str]:
    """Plans that ``catalog`` gives a new version taking entitlements away, and that
    have licenses: publishing those needs a second principal's approval."""
    diff = diff_against_state(store, account, catalog)
    return [
        change.code
        for change in diff.plans
        if change.action == "new_version"
        and change.takes_away
        and approvals.plan_has_licenses(store, account, change.code)
    ]


def apply_catalog(
    submit: Submit,
    store: Store,
    settings: Settings,
    caller: Principal,
    text: str,
    dry_run: bool,
) -> CatalogDiff | ApprovalPending:
    """Parse the catalog YAML ``text``, diff it against the account's products and
    plans and, unless ``dry_run``, append one event per change → the diff. When it
    would take entitlements away from licenses on a plan, request a second
    principal's approval of ``catalog.apply`` instead → the approval. Raises what
    ``parse_catalog`` and ``diff_catalog`` raise (``InvalidInput`` naming the field,
    ``Conflict`` for what the state forbids)."""
    catalog = parse_catalog(text)
    if not dry_run:
        plans = _takes_away_from_licenses(store, caller.account, catalog)
        if plans:
            # Through JSON: the catalog's tuples become the lists an event holds.
            payload = {"catalog": orjson.loads(orjson.dumps(catalog.to_json()))}
            target = ",".join(plans)[:200]
            return request_approval(
                submit, settings, caller, "catalog.apply", target, payload, None
            )
    actor = Actor(caller.id, caller.role, "api_key")
    return apply_parsed(submit, store, caller.account, actor, catalog, dry_run)


def retire_plan(
    submit: Submit, store: Store, settings: Settings, caller: Principal, plan: str, reason: str
) -> ApprovalPending:
    """Request a second principal's approval of retiring ``plan`` with ``reason`` →
    the approval (once approved, ``plan.retired`` is appended). ``NotFound`` for an
    unknown plan."""
    if len(plan) > MAX_PLAN_CODE or not _plan_exists(store, caller.account, plan):
        raise NotFound(f"plan {plan[:MAX_PLAN_CODE]} not found")
    return request_approval(submit, settings, caller, "plan.retire", plan, {"plan": plan}, reason)


def _plan_exists(store: Store, account: str, plan: str) -> bool:
    with store.read() as tx:
        return tx.projection.row(account, "plans", (plan,)) is not None
