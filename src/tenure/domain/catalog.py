"""The catalog as data, and its diff against the projection — pure.

A ``Catalog`` (products and plans, as ``tenure.service.catalog.parse_catalog`` reads
them from YAML) is compared with the state by ``diff_catalog``; ``ApplyCatalog``
turns the diff into one event per change, all or nothing.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import Field
from typing_extensions import TypedDict

from tenure.domain.answers import NonNegative, closed
from tenure.domain.commands import Command, Context, Decision, DefineProduct, PublishPlan
from tenure.domain.state import Row, StateView
from tenure.domain.values import Code, EntitlementKey, EntitlementValue
from tenure.errors import Conflict, InvalidInput

Value = bool | int
PlanSetting = Literal["core", "duration", "grace", "offline_token_ttl", "activation"]
PLAN_SETTINGS: tuple[PlanSetting, ...] = get_args(PlanSetting)


# ---------------------------------------------------------------- the catalog


@dataclass(frozen=True)
class ProductSpec:
    """A product as the catalog declares it."""

    code: str
    name: str
    features: tuple[str, ...]


@dataclass(frozen=True)
class PlanSpec:
    """A plan as the catalog declares it; ``duration`` None means perpetual."""

    code: str
    product: str
    entitlements: dict[str, Value]
    core: tuple[str, ...]
    duration: str | None
    grace: str | None
    offline_token_ttl: str
    activation: str

    def publish(self) -> PublishPlan:
        """The command that publishes this plan as declared."""
        return PublishPlan(
            self.code,
            self.product,
            dict(self.entitlements),
            list(self.core),
            self.duration,
            self.grace,
            self.offline_token_ttl,
            self.activation,
        )

    def definition(self) -> dict[str, Any]:
        """The fields a published plan version holds, spelled as the projection does."""
        return self.publish().definition()


@dataclass(frozen=True)
class Catalog:
    """Products and plans in file order (codes are unique within each list)."""

    products: tuple[ProductSpec, ...]
    plans: tuple[PlanSpec, ...]

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def undeclared_feature(plan: PlanSpec, features: tuple[str, ...] | list[str]) -> str | None:
    """The first ``feature:*`` entitlement of ``plan`` not in ``features``, if any."""
    for key in plan.entitlements:
        if key.startswith("feature:") and key.removeprefix("feature:") not in features:
            return key
    return None


# ---------------------------------------------------------------- the diff, as JSON


@closed
class ProductChangeJson(TypedDict):
    """``ProductChange.to_json``."""

    code: Code
    action: Literal["create", "update", "unchanged"]
    name: str
    previous_name: str | None
    features: list[Code]
    added_features: list[Code]


_Granted = Annotated[EntitlementValue | None, Field(description="null: not granted")]
EntitlementChangeJson = TypedDict(
    "EntitlementChangeJson", {"key": EntitlementKey, "from": _Granted, "to": _Granted}
)
closed(EntitlementChangeJson)

SettingChangeJson = TypedDict(
    "SettingChangeJson",
    {
        "field": PlanSetting,
        "from": Any,
        "to": Any,
    },
)
closed(SettingChangeJson)


@closed
class PlanChangeJson(TypedDict):
    """``PlanChange.to_json``."""

    code: Code
    product: Code
    action: Literal["create", "new_version", "unchanged"]
    version: Annotated[int, Field(ge=1)]
    previous_version: Annotated[int, Field(ge=1)] | None
    entitlements: list[EntitlementChangeJson]
    settings: list[SettingChangeJson]
    takes_away: bool


@closed
class CatalogDiffJson(TypedDict):
    """``CatalogDiff.to_json``: the ``POST /v1/catalog`` answer."""

    products: list[ProductChangeJson]
    plans: list[PlanChangeJson]
    changes: NonNegative


# ---------------------------------------------------------------- the diff


@dataclass(frozen=True)
class ProductChange:
    """``create``, ``update`` (renamed or features added) or ``unchanged``."""

    code: str
    action: Literal["create", "update", "unchanged"]
    name: str
    previous_name: str | None
    features: tuple[str, ...]
    added_features: tuple[str, ...]

    def to_json(self) -> ProductChangeJson:
        return {
            "code": self.code,
            "action": self.action,
            "name": self.name,
            "previous_name": self.previous_name,
            "features": list(self.features),
            "added_features": list(self.added_features),
        }


@dataclass(frozen=True)
class EntitlementChange:
    """One entitlement of a plan before and after (None: not granted)."""

    key: str
    before: Value | None
    after: Value | None

    @property
    def takes_away(self) -> bool:
        """Removed, switched off, or lowered."""
        if self.before is None:
            return False
        return self.after is None or self.after < self.before

    def to_json(self) -> EntitlementChangeJson:
        return {"key": self.key, "from": self.before, "to": self.after}


@dataclass(frozen=True)
class SettingChange:
    """Another field of a plan (core, duration, grace, token lifetime, activation)."""

    field: PlanSetting
    before: Any
    after: Any

    def to_json(self) -> SettingChangeJson:
        return {"field": self.field, "from": self.before, "to": self.after}


@dataclass(frozen=True)
class PlanChange:
    """``create`` (version 1), ``new_version`` (latest + 1) or ``unchanged``."""

    code: str
    product: str
    action: Literal["create", "new_version", "unchanged"]
    version: int
    previous_version: int | None
    entitlements: tuple[EntitlementChange, ...]
    settings: tuple[SettingChange, ...]

    @property
    def takes_away(self) -> bool:
        """Whether licenses moved to this version lose an entitlement or some of one."""
        return any(change.takes_away for change in self.entitlements)

    def to_json(self) -> PlanChangeJson:
        return {
            "code": self.code,
            "product": self.product,
            "action": self.action,
            "version": self.version,
            "previous_version": self.previous_version,
            "entitlements": [change.to_json() for change in self.entitlements],
            "settings": [change.to_json() for change in self.settings],
            "takes_away": self.takes_away,
        }


@dataclass(frozen=True)
class CatalogDiff:
    """What applying a catalog does, products and plans each sorted by code."""

    products: tuple[ProductChange, ...]
    plans: tuple[PlanChange, ...]

    @property
    def changes(self) -> int:
        """The number of events applying appends (one per created or changed item)."""
        actions = [p.action for p in self.products] + [p.action for p in self.plans]
        return sum(action != "unchanged" for action in actions)

    def to_json(self) -> CatalogDiffJson:
        """The ``POST /v1/catalog`` response body."""
        return {
            "products": [change.to_json() for change in self.products],
            "plans": [change.to_json() for change in self.plans],
            "changes": self.changes,
        }


def diff_catalog(view: StateView, catalog: Catalog) -> CatalogDiff:
    """Compare ``catalog`` with the projection seen through ``view``.

    Raises ``Conflict`` (naming the field) for what the projector would refuse: a
    product that drops features, a plan that moves to another product; and
    ``InvalidInput`` for a plan whose product is neither in the catalog nor defined,
    or that grants a feature its (already defined) product does not declare.
    """
    products = [_product_change(view, i, p) for i, p in enumerate(catalog.products)]
    declared = {p.code for p in catalog.products}
    plans = [_plan_change(view, declared, i, p) for i, p in enumerate(catalog.plans)]
    return CatalogDiff(
        tuple(sorted(products, key=lambda c: c.code)), tuple(sorted(plans, key=lambda c: c.code))
    )


def _product_change(view: StateView, index: int, spec: ProductSpec) -> ProductChange:
    features = tuple(sorted(set(spec.features)))
    current = view.get("products", (spec.code,))
    if current is None:
        return ProductChange(spec.code, "create", spec.name, None, features, features)
    dropped = sorted(set(current["features"]) - set(features))
    if dropped:
        raise Conflict(
            f"product {spec.code} cannot drop features {dropped}: plans may grant them",
            field=f"products[{index}].features",
        )
    added = tuple(sorted(set(features) - set(current["features"])))
    renamed = current["name"] != spec.name
    action: Literal["update", "unchanged"] = "update" if added or renamed else "unchanged"
    previous = current["name"] if renamed else None
    return ProductChange(spec.code, action, spec.name, previous, features, added)


def _plan_change(view: StateView, declared: set[str], index: int, spec: PlanSpec) -> PlanChange:
    at = f"plans[{index}]"
    if spec.product not in declared:
        product = view.get("products", (spec.product,))
        if product is None:
            raise InvalidInput(
                f"plan {spec.code} names product {spec.product}, which is neither in the "
                "catalog nor defined",
                field=f"{at}.product",
            )
        key = undeclared_feature(spec, product["features"])
        if key is not None:
            raise InvalidInput(
                f"plan {spec.code} grants {key}, which product {spec.product} does not declare",
                field=f"{at}.entitlements.{key}",
            )
    head = view.get("plans", (spec.code,))
    if head is None:
        return PlanChange(
            spec.code, spec.product, "create", 1, None, _entitlement_changes({}, spec), ()
        )
    if head["product"] != spec.product:
        raise Conflict(
            f"plan {spec.code} belongs to product {head['product']}, not {spec.product}",
            field=f"{at}.product",
        )
    latest = _latest_version(view, spec.code, head)
    entitlements = _entitlement_changes(latest["entitlements"], spec)
    wanted = spec.definition()
    settings = tuple(
        SettingChange(name, latest[name], wanted[name])
        for name in PLAN_SETTINGS
        if latest[name] != wanted[name]
    )
    number = head["latest_version"]
    if not entitlements and not settings:
        return PlanChange(spec.code, spec.product, "unchanged", number, number, (), ())
    return PlanChange(
        spec.code, spec.product, "new_version", number + 1, number, entitlements, settings
    )


def _latest_version(view: StateView, plan: str, head: Row) -> Row:
    row = view.get("plan_versions", (plan, head["latest_version"]))
    if row is None:
        raise Conflict(f"plan {plan} has no version {head['latest_version']}")
    return row


def _same(a: Any, b: Any) -> bool:
    # True == 1 in Python; an entitlement that turns from a flag into a number changed.
    return type(a) is type(b) and a == b


def _entitlement_changes(before: dict[str, Value], spec: PlanSpec) -> tuple[EntitlementChange, ...]:
    after = spec.entitlements
    return tuple(
        EntitlementChange(key, before.get(key), after.get(key))
        for key in sorted(before.keys() | after.keys())
        if not _same(before.get(key), after.get(key))
    )


# ---------------------------------------------------------------- applying


@dataclass(frozen=True)
class ApplyCatalog(Command):
    """Append the events of ``diff`` as one all-or-nothing command.

    The writer re-computes the diff on the state it appends to; if another writer
    changed the catalog since ``diff`` was computed, the command is refused
    (``Conflict``) rather than applying something other than what was shown.
    """

    name: ClassVar[str] = "apply_catalog"
    catalog: Catalog
    diff: CatalogDiff

    def request(self) -> dict[str, Any]:
        return {"command": self.name, "catalog": self.catalog.to_json()}

    def decide(self, view: StateView, ctx: Context) -> Decision:
        if diff_catalog(view, self.catalog) != self.diff:
            raise Conflict("the catalog changed while this one was being applied; apply again")
        drafts = []
        for command in catalog_commands(self.catalog, self.diff):
            drafts.extend(command.decide(view, ctx).drafts)
        return Decision(drafts, dict(self.diff.to_json()))


def catalog_commands(catalog: Catalog, diff: CatalogDiff) -> list[Command]:
    """``DefineProduct`` then ``PublishPlan`` commands for every change in ``diff``."""
    products = {p.code: p for p in catalog.products}
    plans = {p.code: p for p in catalog.plans}
    commands: list[Command] = [
        DefineProduct(c.code, products[c.code].name, list(products[c.code].features))
        for c in diff.products
        if c.action != "unchanged"
    ]
    for change in diff.plans:
        if change.action != "unchanged":
            commands.append(plans[change.code].publish())
    return commands
