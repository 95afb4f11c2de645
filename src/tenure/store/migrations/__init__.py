"""Alembic migrations, shipped inside the package and run by ``tenure db upgrade``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from tenure.store.engine import lock_store

if TYPE_CHECKING:
    from alembic.config import Config

# Alembic is imported where it is used: most commands never migrate, and it is one of
# the slowest imports of the CLI.

HERE = Path(__file__).parent


def alembic_config(connection: sa.Connection) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.attributes["connection"] = connection
    return config


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    """Bring the schema of ``engine`` up to ``revision`` (default: the newest)."""
    with engine.connect() as connection:
        connection.execution_options(tenure_write=True)
        with connection.begin():
            # PostgreSQL: servers starting together migrate one at a time (DDL is
            # transactional there; the next one finds the schema at head).
            lock_store(connection, shared=False)
            from alembic import command

            command.upgrade(alembic_config(connection), revision)


def current_revision(engine: sa.Engine) -> str | None:
    """The schema revision of ``engine``'s database, or None if it has none."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection, connection.begin():
        return MigrationContext.configure(connection).get_current_revision()
