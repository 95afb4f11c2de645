"""The declarative catalog: YAML in, diff out, one event per change appended.

``parse_catalog`` turns the YAML text into a ``Catalog`` (or one ``InvalidInput``
naming the field at fault, such as ``plans[1].entitlements.seats``); the diff and
the command that applies it are pure (``tenure.domain.catalog``); ``apply_catalog``
diffs against the stored projection and appends nothing at all when the catalog is
already in place, so applying the same file twice appends nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

from tenure.domain.catalog import (
    ApplyCatalog,
    Catalog,
    CatalogDiff,
    PlanSpec,
    ProductSpec,
    Value,
    diff_catalog,
    undeclared_feature,
)
from tenure.domain.events import Actor, check_entitlement_value
from tenure.domain.state import Key, Row
from tenure.domain.storable import first_unstorable, spell
from tenure.domain.timefmt import parse_duration
from tenure.domain.values import Code, EntitlementKey, Text
from tenure.errors import InvalidInput
from tenure.service.ledger import Outcome, Submission
from tenure.store.unit import Projection, Store

MAX_CATALOG_BYTES = 1024 * 1024
"""The largest catalog accepted (1 MiB of UTF-8)."""
MAX_NODES = 100_000
"""Values a parsed document may hold, counting each alias use: YAML aliases let a
small file stand for a huge tree (a "billion laughs"), which validation would walk."""
MAX_ENTITLEMENT_NUMBER = 2**53 - 1
"""Canonical JSON (RFC 8785) represents integers exactly only up to 2^53 - 1."""


# ---------------------------------------------------------------- parsing


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _Product(_Strict):
    code: Code
    name: Text
    features: list[Code] = []


Duration = Annotated[str, StringConstraints(max_length=64)]


class _Plan(_Strict):
    code: Code
    product: Code
    # Values are checked by hand below, for messages that say what an entitlement takes.
    entitlements: dict[EntitlementKey, Any]
    core: list[EntitlementKey] = []
    duration: Duration | None
    grace: Duration | None = "P14D"
    offline_token_ttl: Duration = "PT24H"  # noqa: S105 - a duration, not a secret
    activation: Literal["floating", "node-locked"] = "floating"


class _Document(_Strict):
    products: list[_Product] = []
    plans: list[_Plan] = []


def parse_catalog(text: str) -> Catalog:
    """Parse and check a catalog YAML document.

    Raises ``InvalidInput`` whose ``field`` names the path at fault (``catalog`` for
    the document as a whole): text over 1 MiB, YAML syntax, a document that is not a
    mapping, unknown or missing keys, malformed codes or durations, floats or wrong
    kinds of entitlement values, duplicate codes, core entitlements the plan does not
    grant, features a plan grants that its product (declared in the same file)
    does not declare, and text no backend can store (a NUL character, a lone
    surrogate).
    """
    if len(text.encode("utf-8", errors="surrogatepass")) > MAX_CATALOG_BYTES:
        raise InvalidInput(f"the catalog is larger than {MAX_CATALOG_BYTES} bytes", field="catalog")
    document = _load_yaml(text)
    found = first_unstorable(document)
    if found is not None:  # YAML's "\0" and "\ud800" escapes
        where = spell(found[0], "catalog")
        raise InvalidInput(f"{where} {found[1]}", field=where)
    try:
        parsed = _Document.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = _path(document, first["loc"])
        raise InvalidInput(f"{where}: {first['msg']}", field=where) from None
    catalog = Catalog(
        tuple(ProductSpec(p.code, p.name, tuple(p.features)) for p in parsed.products),
        tuple(_plan_spec(i, plan) for i, plan in enumerate(parsed.plans)),
    )
    _check_unique(catalog)
    _check_plan_features(catalog)
    return catalog


def _load_yaml(text: str) -> dict[str, Any]:
    try:
        document = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise InvalidInput(f"not valid YAML{where}: {exc.problem}", field="catalog") from None
    except (yaml.YAMLError, ValueError, TypeError, RecursionError) as exc:
        raise InvalidInput(f"not valid YAML: {exc}", field="catalog") from None
    if not isinstance(document, dict):
        kind = "empty" if document is None else type(document).__name__
        raise InvalidInput(
            f"the catalog must be a mapping with products and plans, not {kind}", field="catalog"
        )
    _check_node_count(document)
    return document


def _check_node_count(document: Any) -> None:
    pending, seen = [document], 0
    while pending:
        node = pending.pop()
        seen += 1
        if seen > MAX_NODES:
            raise InvalidInput(
                f"the catalog holds more than {MAX_NODES} values (aliases count each use)",
                field="catalog",
            )
        if isinstance(node, dict):
            pending.extend(node.keys())
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)


def _path(document: Any, loc: tuple[int | str, ...]) -> str:
    """``plans[1].entitlements.seats`` from a pydantic error location, without
    pydantic's own tags (``[key]``, union member names) that are not in the document."""
    text, node = "", document
    for part in loc:
        if isinstance(node, dict) and isinstance(part, str):
            text += f".{part}" if text else part
            if part not in node:
                break
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            text += f"[{part}]"
            node = node[part]
        else:
            break
    return text or "catalog"


def _entitlement_value(key: str, value: Any, field: str) -> Value:
    if isinstance(value, float):
        raise InvalidInput(
            f"entitlement {key} must be an integer or true/false, not the number {value!r}",
            field=field,
        )
    try:
        check_entitlement_value(key, value, field)
    except InvalidInput as exc:
        raise InvalidInput(exc.message, field=field) from None
    if type(value) is int and value > MAX_ENTITLEMENT_NUMBER:
        raise InvalidInput(
            f"entitlement {key} must be at most {MAX_ENTITLEMENT_NUMBER}", field=field
        )
    result: Value = value
    return result


def _plan_spec(index: int, plan: _Plan) -> PlanSpec:
    at = f"plans[{index}]"
    entitlements = {
        key: _entitlement_value(key, value, f"{at}.entitlements.{key}")
        for key, value in plan.entitlements.items()
    }
    for position, key in enumerate(plan.core):
        if key not in entitlements:
            raise InvalidInput(
                f"core entitlement {key} is not granted by plan {plan.code}",
                field=f"{at}.core[{position}]",
            )
    for name in ("duration", "grace", "offline_token_ttl"):
        value = getattr(plan, name)
        if value is not None:
            parse_duration(value, field=f"{at}.{name}")
    return PlanSpec(
        plan.code,
        plan.product,
        entitlements,
        tuple(plan.core),
        plan.duration,
        plan.grace,
        plan.offline_token_ttl,
        plan.activation,
    )


def _check_unique(catalog: Catalog) -> None:
    for kind, codes in (
        ("products", [p.code for p in catalog.products]),
        ("plans", [p.code for p in catalog.plans]),
    ):
        for index, code in enumerate(codes):
            if code in codes[:index]:
                raise InvalidInput(f"{code} is declared twice", field=f"{kind}[{index}].code")
    for index, product in enumerate(catalog.products):
        for position, feature in enumerate(product.features):
            if feature in product.features[:position]:
                raise InvalidInput(
                    f"feature {feature} is listed twice",
                    field=f"products[{index}].features[{position}]",
                )


def _check_plan_features(catalog: Catalog) -> None:
    declared = {product.code: product.features for product in catalog.products}
    for index, plan in enumerate(catalog.plans):
        if plan.product in declared:
            key = undeclared_feature(plan, declared[plan.product])
            if key is not None:
                raise InvalidInput(
                    f"plan {plan.code} grants {key}, which product {plan.product} does not declare",
                    field=f"plans[{index}].entitlements.{key}",
                )


class _View:
    """The projection of one account as a transaction sees it (a ``StateView``)."""

    def __init__(self, projection: Projection, account: str) -> None:
        self._projection = projection
        self._account = account

    def get(self, table: str, key: Key) -> Row | None:
        return self._projection.row(self._account, table, key)


def diff_against_state(store: Store, account: str, catalog: Catalog) -> CatalogDiff:
    """``diff_catalog`` of ``catalog`` against the account's state in one snapshot."""
    with store.read() as tx:
        return diff_catalog(_View(tx.projection, account), catalog)


def apply_catalog(
    submit: Callable[[Submission], Outcome],
    store: Store,
    account: str,
    actor: Actor,
    catalog: Catalog,
    dry_run: bool,
) -> CatalogDiff:
    """Diff ``catalog`` against the account's state and, unless ``dry_run``, append
    one event per change (products first, then plans) in one all-or-nothing
    submission. An unchanged catalog appends nothing.

    Raises what ``diff_catalog`` raises, and ``Conflict`` when the state changed
    between the diff and the append.
    """
    diff = diff_against_state(store, account, catalog)
    if not dry_run and diff.changes:
        submit(Submission(account, ApplyCatalog(catalog, diff), actor))
    return diff
