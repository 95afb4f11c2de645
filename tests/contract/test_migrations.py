"""The Alembic migrations create exactly the schema ``tenure.store.tables`` describes."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from tenure.store import tables
from tenure.store.engine import create_engine
from tenure.store.migrations import current_revision, upgrade


def _migrated(path: Path) -> sa.Engine:
    engine = create_engine(f"sqlite:///{path.as_posix()}")
    upgrade(engine)
    return engine


def test_migrations_produce_exactly_the_metadata_schema(tmp_path: Path) -> None:
    engine = _migrated(tmp_path / "tenure.db")
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diffs = compare_metadata(context, tables.metadata)
            names = set(sa.inspect(conn).get_table_names())
    finally:
        engine.dispose()
    assert diffs == []
    assert set(tables.metadata.tables) <= names
    assert names - set(tables.metadata.tables) == {"alembic_version"}


def test_current_revision_is_the_latest_and_upgrading_again_is_a_no_op(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{(tmp_path / 'tenure.db').as_posix()}")
    try:
        assert current_revision(engine) is None
        upgrade(engine)
        assert current_revision(engine) == "0014"
        upgrade(engine)
        assert current_revision(engine) == "0014"
    finally:
        engine.dispose()
