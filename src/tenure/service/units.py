"""Units of work: state views that stage projection changes until the batch commits.

``BatchView`` reads rows from the store's projection once per batch and keeps every change in memory
until ``flush``; ``CommandView`` layers one command's changes on top so that a
command whose second event fails leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Iterable

from tenure.domain.state import Change, Key, Row
from tenure.store.unit import Projection

_MISSING = object()


class BatchView:
    """The projection of one account as seen by a batch of commands.

    Rows are read once and cached in ``rows``; staged changes are written to it as
    well, so the caller must drop ``rows`` if the batch does not commit.
    """

    def __init__(
        self, projection: Projection, account: str, rows: dict[tuple[str, Key], Row | None]
    ) -> None:
        self._projection = projection
        self._account = account
        # ``rows`` outlives the batch when the writer knows nobody else wrote since:
        # then the next batch reads its rows from memory instead of the store.
        self._rows = rows
        self._dirty: dict[tuple[str, Key], Row | None] = {}
        self._before: dict[tuple[str, Key], object] = {}

    def get(self, table: str, key: Key) -> Row | None:
        slot = (table, key)
        row = self._rows.get(slot, _MISSING)
        if row is _MISSING:
            row = self._rows[slot] = self._projection.row(self._account, table, key)
        return row  # type: ignore[return-value]

    def stage(self, changes: Iterable[Change]) -> None:
        for table, key, row in changes:
            slot = (table, key)
            if slot not in self._before:
                self._before[slot] = self._rows.get(slot, _MISSING)
            self._rows[slot] = row
            self._dirty[slot] = row

    def flush(self) -> list[tuple[str, Key]]:
        """Write every staged change: deletes, upserts of new (or unread) rows, and
        updates of only the columns that changed — so an index whose columns did not
        change is not rewritten (fewer pages per commit). Returns the ``(table, key)``
        of every row written."""
        deletes: dict[str, list[Key]] = {}
        upserts: dict[str, list[Row]] = {}
        updates: dict[tuple[str, tuple[str, ...]], list[Row]] = {}
        written: list[tuple[str, Key]] = []
        for (table, key), row in self._dirty.items():
            before = self._before[(table, key)]
            if row is None:
                deletes.setdefault(table, []).append(key)
            elif not isinstance(before, dict):
                upserts.setdefault(table, []).append(row)
            else:
                columns = tuple(col for col, value in row.items() if before.get(col) != value)
                if not columns:
                    continue
                updates.setdefault((table, columns), []).append(row)
            written.append((table, key))
        for table in sorted(deletes.keys() | upserts.keys()):
            self._projection.write(
                self._account, table, upserts.get(table, []), deletes.get(table, [])
            )
        for (table, cols), rows in sorted(updates.items()):
            self._projection.update(self._account, table, cols, rows)
        self._dirty.clear()
        self._before.clear()
        return written


class CommandView:
    """One command's changes over a ``BatchView``; merged only on ``commit``."""

    def __init__(self, parent: BatchView) -> None:
        self._parent = parent
        self._local: dict[tuple[str, Key], Row | None] = {}
        self._changes: list[Change] = []

    def get(self, table: str, key: Key) -> Row | None:
        slot = (table, key)
        if slot in self._local:
            return self._local[slot]
        return self._parent.get(table, key)

    def stage(self, changes: Iterable[Change]) -> None:
        for change in changes:
            self._local[(change[0], change[1])] = change[2]
            self._changes.append(change)

    def commit(self) -> None:
        self._parent.stage(self._changes)
