"""The declarative catalog: parsing (errors name the field) and the diff semantics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tenure.domain.catalog import Catalog, catalog_commands, diff_catalog
from tenure.domain.projector import apply_data
from tenure.domain.state import MemoryState
from tenure.errors import Conflict, InvalidInput
from tenure.service.catalog import MAX_CATALOG_BYTES, parse_catalog

EXAMPLE = Path(__file__).parents[2] / "examples" / "catalog.yaml"

STUDIO = """
products:
  - code: studio
    name: Studio
    features: [export-pdf, cloud-sync]
plans:
  - code: studio-pro
    product: studio
    entitlements: {"feature:export-pdf": true, "feature:cloud-sync": true, "seats": 5}
    core: ["feature:export-pdf"]
    duration: P365D
"""


def state_with(*events: tuple[str, dict[str, Any]]) -> MemoryState:
    state = MemoryState()
    for seq, (type_name, data) in enumerate(events):
        state.apply_changes(apply_data(state, type_name, 1, data, seq))
    return state


def product(features: list[str], name: str = "Studio") -> tuple[str, dict[str, Any]]:
    return ("product.defined", {"product": "studio", "name": name, "features": features})


def plan(version: int, entitlements: dict[str, bool | int]) -> tuple[str, dict[str, Any]]:
    return (
        "plan.published",
        {
            "plan": "studio-pro",
            "version": version,
            "product": "studio",
            "entitlements": entitlements,
            "core": ["feature:export-pdf"],
            "duration": "P365D",
            "grace": "P14D",
            "offline_token_ttl": "PT24H",
            "activation": "floating",
        },
    )


PRO = {"feature:export-pdf": True, "feature:cloud-sync": True, "seats": 5}


def field_of(text: str) -> str | None:
    with pytest.raises(InvalidInput) as caught:
        parse_catalog(text)
    assert type(caught.value) is InvalidInput
    return caught.value.field


# ---------------------------------------------------------------- parsing


def test_the_example_catalog_parses_with_two_products_and_four_plans() -> None:
    catalog = parse_catalog(EXAMPLE.read_text())
    assert [p.code for p in catalog.products] == ["studio", "render-farm"]
    plans = {p.code: p for p in catalog.plans}
    assert len(plans) == 4
    assert plans["studio-lifetime"].duration is None
    assert plans["studio-basic"].activation == "node-locked"
    assert plans["studio-pro"].offline_token_ttl == "PT24H"


def test_defaults_are_floating_activation_a_day_of_offline_tokens_and_no_core() -> None:
    catalog = parse_catalog(
        "plans: [{code: p, product: studio, entitlements: {seats: 1}, duration: null}]\n"
        "products: [{code: studio, name: Studio}]"
    )
    spec = catalog.plans[0]
    assert (spec.activation, spec.offline_token_ttl, spec.core) == ("floating", "PT24H", ())


def test_an_entitlement_of_the_wrong_kind_names_its_path() -> None:
    bad = STUDIO.replace('"seats": 5', '"seats": true')
    assert field_of(bad) == "plans[0].entitlements.seats"


def test_a_float_entitlement_is_rejected_even_when_whole() -> None:
    for value in ("5.0", "5.5", ".inf"):
        bad = STUDIO.replace('"seats": 5', f'"seats": {value}')
        with pytest.raises(InvalidInput, match="not the number") as caught:
            parse_catalog(bad)
        assert caught.value.field == "plans[0].entitlements.seats"


def test_a_feature_flag_must_be_true_or_false() -> None:
    bad = STUDIO.replace('"feature:cloud-sync": true', '"feature:cloud-sync": 1')
    assert field_of(bad) == "plans[0].entitlements.feature:cloud-sync"


def test_negative_and_huge_numbers_are_rejected() -> None:
    assert field_of(STUDIO.replace('"seats": 5', '"seats": -1')) == "plans[0].entitlements.seats"
    huge = STUDIO.replace('"seats": 5', f'"seats": {2**60}')
    assert field_of(huge) == "plans[0].entitlements.seats"


def test_unknown_and_missing_keys_name_the_field() -> None:
    assert field_of(STUDIO.replace("duration: P365D", "duration: P365D\n    colour: red")) == (
        "plans[0].colour"
    )
    assert field_of(STUDIO.replace("    duration: P365D\n", "")) == "plans[0].duration"
    assert field_of("products: []\nextras: 1") == "extras"
    assert field_of(STUDIO.replace("name: Studio", "name: 12")) == "products[0].name"


def test_malformed_codes_keys_durations_and_modes_name_the_field() -> None:
    assert field_of(STUDIO.replace("code: studio-pro", "code: Studio Pro")) == "plans[0].code"
    assert field_of(STUDIO.replace('"seats"', '"sofas"')) == "plans[0].entitlements.sofas"
    assert field_of(STUDIO.replace("P365D", "a year")) == "plans[0].duration"
    assert field_of(STUDIO + "    grace: P0D\n") == "plans[0].grace"
    assert field_of(STUDIO + "    activation: roaming\n") == "plans[0].activation"
    assert field_of(STUDIO + "    offline_token_ttl: null\n") == "plans[0].offline_token_ttl"


def test_core_entitlements_must_be_granted_by_the_plan() -> None:
    bad = STUDIO.replace('core: ["feature:export-pdf"]', 'core: ["seats", "module:analytics"]')
    assert field_of(bad) == "plans[0].core[1]"


def test_a_plan_may_not_grant_a_feature_its_product_does_not_declare() -> None:
    bad = STUDIO.replace("[export-pdf, cloud-sync]", "[export-pdf]")
    assert field_of(bad) == "plans[0].entitlements.feature:cloud-sync"


def test_duplicate_codes_and_features_are_rejected() -> None:
    twice = STUDIO + STUDIO.split("plans:\n")[1]
    assert field_of(twice) == "plans[1].code"
    assert field_of(STUDIO.replace("cloud-sync]", "cloud-sync, export-pdf]")) == (
        "products[0].features[2]"
    )


def test_documents_that_are_not_a_catalog_are_rejected_as_a_whole() -> None:
    for text in ("", "- a\n- b\n", "just text", "products: [\n", "a: 2020-02-30\n"):
        assert field_of(text) == "catalog"


def test_input_over_one_mebibyte_is_rejected() -> None:
    assert field_of("#" * (MAX_CATALOG_BYTES + 1)) == "catalog"


def test_an_alias_bomb_is_rejected_without_walking_it() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    assert field_of("\n".join(lines) + "\n") == "catalog"


def test_deep_nesting_is_a_clear_error() -> None:
    assert field_of("products: " + "[" * 50_000 + "]" * 50_000) == "catalog"


# ---------------------------------------------------------------- the diff


def test_everything_is_created_on_an_empty_state() -> None:
    diff = diff_catalog(MemoryState(), parse_catalog(STUDIO))
    body = diff.to_json()
    assert body["changes"] == 2
    assert body["products"] == [
        {
            "code": "studio",
            "action": "create",
            "name": "Studio",
            "previous_name": None,
            "features": ["cloud-sync", "export-pdf"],
            "added_features": ["cloud-sync", "export-pdf"],
        }
    ]
    [created] = body["plans"]
    assert (created["action"], created["version"], created["takes_away"]) == ("create", 1, False)
    assert {"key": "seats", "from": None, "to": 5} in created["entitlements"]


def test_an_applied_catalog_is_unchanged() -> None:
    state = state_with(product(["export-pdf", "cloud-sync"]), plan(1, PRO))
    diff = diff_catalog(state, parse_catalog(STUDIO))
    assert diff.changes == 0
    assert [c.action for c in diff.products] == ["unchanged"]
    assert [(c.action, c.version) for c in diff.plans] == [("unchanged", 1)]
    assert catalog_commands(parse_catalog(STUDIO), diff) == []


def test_an_added_feature_or_a_new_name_updates_the_product() -> None:
    state = state_with(product(["export-pdf"], name="Old Studio"))
    catalog = parse_catalog(STUDIO.split("plans:")[0])
    [change] = diff_catalog(state, catalog).products
    assert change.action == "update"
    assert change.added_features == ("cloud-sync",)
    assert change.previous_name == "Old Studio"


def test_removing_a_feature_is_refused_naming_the_product() -> None:
    state = state_with(product(["export-pdf", "cloud-sync", "scripting"]))
    with pytest.raises(Conflict, match="scripting") as caught:
        diff_catalog(state, parse_catalog(STUDIO))
    assert caught.value.context["field"] == "products[0].features"


def test_a_changed_plan_publishes_the_next_version_with_what_changed() -> None:
    state = state_with(product(["export-pdf", "cloud-sync"]), plan(1, PRO), plan(2, PRO))
    more = STUDIO.replace('"seats": 5', '"seats": 10')
    [change] = diff_catalog(state, parse_catalog(more)).plans
    assert (change.action, change.version, change.previous_version) == ("new_version", 3, 2)
    assert [c.to_json() for c in change.entitlements] == [{"key": "seats", "from": 5, "to": 10}]
    assert change.takes_away is False


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ('"seats": 5', '"seats": 4'),
        ('"feature:cloud-sync": true', '"feature:cloud-sync": false'),
        ('"feature:cloud-sync": true, ', ""),
    ],
)
def test_lowering_or_removing_an_entitlement_takes_something_away(before: str, after: str) -> None:
    state = state_with(product(["export-pdf", "cloud-sync"]), plan(1, PRO))
    [change] = diff_catalog(state, parse_catalog(STUDIO.replace(before, after))).plans
    assert change.action == "new_version"
    assert change.to_json()["takes_away"] is True


def test_a_changed_setting_alone_is_a_new_version_that_takes_nothing_away() -> None:
    state = state_with(product(["export-pdf", "cloud-sync"]), plan(1, PRO))
    node_locked = STUDIO + "    activation: node-locked\n"
    [change] = diff_catalog(state, parse_catalog(node_locked)).plans
    assert change.action == "new_version"
    assert [s.to_json() for s in change.settings] == [
        {"field": "activation", "from": "floating", "to": "node-locked"}
    ]
    assert change.takes_away is False


def test_a_plan_may_name_a_product_that_already_exists() -> None:
    state = state_with(product(["export-pdf", "cloud-sync"]))
    catalog = parse_catalog("plans:" + STUDIO.split("plans:")[1])
    [change] = diff_catalog(state, catalog).plans
    assert change.action == "create"


def test_a_plan_naming_an_unknown_product_is_invalid() -> None:
    catalog = parse_catalog("plans:" + STUDIO.split("plans:")[1])
    with pytest.raises(InvalidInput) as caught:
        diff_catalog(MemoryState(), catalog)
    assert caught.value.field == "plans[0].product"


def test_a_plan_may_not_grant_a_feature_an_existing_product_lacks() -> None:
    state = state_with(product(["export-pdf"]))
    catalog = parse_catalog("plans:" + STUDIO.split("plans:")[1])
    with pytest.raises(InvalidInput) as caught:
        diff_catalog(state, catalog)
    assert caught.value.field == "plans[0].entitlements.feature:cloud-sync"


def test_a_plan_cannot_move_to_another_product() -> None:
    state = state_with(product(["export-pdf", "cloud-sync"]), plan(1, PRO))
    moved = STUDIO.replace("code: studio\n", "code: other\n").replace(
        "product: studio", "product: other"
    )
    with pytest.raises(Conflict) as caught:
        diff_catalog(state, parse_catalog(moved))
    assert caught.value.context["field"] == "plans[0].product"


def test_the_diff_is_sorted_by_code_whatever_the_file_order() -> None:
    catalog = parse_catalog(EXAMPLE.read_text())
    shuffled = Catalog(catalog.products[::-1], catalog.plans[::-1])
    assert diff_catalog(MemoryState(), shuffled) == diff_catalog(MemoryState(), catalog)
    codes = [c.code for c in diff_catalog(MemoryState(), catalog).plans]
    assert codes == sorted(codes)


def test_the_commands_of_a_diff_replay_to_an_unchanged_catalog() -> None:
    catalog = parse_catalog(EXAMPLE.read_text())
    diff = diff_catalog(MemoryState(), catalog)
    commands = catalog_commands(catalog, diff)
    assert len(commands) == diff.changes == 6
    state = MemoryState()
    for seq, command in enumerate(commands):
        [draft] = command.decide(state, None).drafts  # type: ignore[arg-type]
        state.apply_changes(apply_data(state, draft.type, 1, draft.data, seq))
    assert diff_catalog(state, catalog).changes == 0
