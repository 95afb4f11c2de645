"""Every table of the schema head is either restored (and how it is proven) or
deliberately not restored (and why), in code and in docs/durability.md."""

from __future__ import annotations

import re
from pathlib import Path

from tenure.durability import inventory, keyrows
from tenure.store.tables import metadata

DOC = Path(__file__).resolve().parents[2] / "docs" / "durability.md"


def test_every_table_is_restored_or_listed_as_not_restored_with_a_reason() -> None:
    restored, skipped = set(inventory.RESTORED), set(inventory.NOT_RESTORED)
    assert not restored & skipped, "a table is both restored and not restored"
    unlisted = set(metadata.tables) - restored - skipped
    assert not unlisted, f"tables neither restored nor listed as not restored: {sorted(unlisted)}"
    assert not (restored | skipped) - set(metadata.tables), "the inventory names no table"
    for table, text in {**inventory.RESTORED, **inventory.NOT_RESTORED}.items():
        assert len(text) > 20, f"{table}: say how it is proven, or why it is not restored"


def test_the_shipped_row_files_hold_only_tables_a_restore_writes() -> None:
    for file in keyrows.FILES:
        assert set(file.tables) <= set(inventory.RESTORED), file.name
        assert all(file.name in inventory.RESTORED[t] for t in file.tables), file.name


def test_docs_list_every_table_as_the_code_does() -> None:
    section = DOC.read_text().split("## What a restore brings back", 1)[1].split("\n## ", 1)[0]
    rows = dict(re.findall(r"^\| `([a-z_]+)` \| (restored|not restored) \|", section, re.M))
    expected = {t: "restored" for t in inventory.RESTORED}
    expected |= {t: "not restored" for t in inventory.NOT_RESTORED}
    assert rows == expected
