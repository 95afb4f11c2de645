"""Every table of the schema head has a decision in the backend migration's table
plan (``tenure.store.table_copy.TABLE_PLAN``), and docs/migration.md lists each: a
table added later without one fails here."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import sqlalchemy as sa

from tenure.store import tables as t
from tenure.store.table_copy import COPIED, TABLE_PLAN, How

DOC = Path(__file__).resolve().parents[2] / "docs" / "migration.md"


def _undecided(metadata: sa.MetaData) -> list[str]:
    """The tables of ``metadata`` the plan does not name."""
    return sorted(set(metadata.tables) - {plan.table for plan in TABLE_PLAN})


def test_every_table_of_the_schema_head_is_in_the_plan_exactly_once() -> None:
    planned = Counter(plan.table for plan in TABLE_PLAN)
    assert [name for name, times in planned.items() if times > 1] == []
    assert _undecided(t.metadata) == [], "tables without a decision"
    assert sorted(set(planned) - set(t.metadata.tables)) == [], "planned tables not in schema"


def test_a_table_added_to_the_schema_without_a_decision_is_named() -> None:
    later = sa.MetaData()
    for table in t.metadata.tables.values():
        table.to_metadata(later)
    sa.Table("licence_notes", later, sa.Column("account", sa.Text, primary_key=True))
    assert _undecided(later) == ["licence_notes"]


def test_every_planned_table_says_why_and_appended_ones_name_their_column() -> None:
    for plan in TABLE_PLAN:
        assert plan.why.strip(), plan.table
        if plan.how is How.APPENDED:
            assert plan.column in t.metadata.tables[plan.table].c, plan.table
        else:
            assert plan.column is None, plan.table


def test_every_table_but_accounts_is_owned_by_an_account_column() -> None:
    for plan in TABLE_PLAN:
        columns = t.metadata.tables[plan.table].c
        assert ("id" if plan.table == "accounts" else "account") in columns, plan.table


def test_projection_and_state_map_are_replayed_and_the_ledger_is_streamed() -> None:
    how = {plan.table: plan.how for plan in TABLE_PLAN}
    for name in t.projection:
        assert how[f"proj_{name}"] is How.REPLAYED
    assert how["state_leaves"] is how["state_buckets"] is How.REPLAYED
    assert {how[n] for n in ("ledger_events", "ledger_nodes", "ledger_heads")} == {How.LEDGER}
    assert how["webhooks"] in COPIED


def test_docs_migration_names_every_table_with_its_decision() -> None:
    text = DOC.read_text()
    missing = [
        plan.table
        for plan in TABLE_PLAN
        if not plan.table.startswith("proj_") and f"`{plan.table}`" not in text
    ]
    assert missing == []
    assert "`proj_*`" in text
