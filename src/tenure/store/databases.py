"""Whole databases, named by URL: open one as a ``Store``, read and move its schema
revision (Alembic), copy a SQLite file. What durability does to a database other
than the one in use (a restore target, a drill's scratch database, both ends of a
backend migration, the copy an upgrade snapshots) goes through here, so that no
engine or connection leaves ``tenure.store``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from alembic.config import Config
from alembic.script import ScriptDirectory

from tenure.store import migrations, table_copy, tables
from tenure.store.engine import create_engine
from tenure.store.unit import SqlStore, SqlTransaction, Transaction

DatabaseError = sa.exc.SQLAlchemyError
"""What a database driver raises (the CLI shows it as one line)."""


def database_error_text(exc: BaseException) -> str:
    """One line about a ``DatabaseError``: the driver's own message when it has one."""
    orig = getattr(exc, "orig", None)
    return str(orig) if orig is not None else str(exc).splitlines()[0]


class OpenStore(SqlStore):
    """A ``Store`` over a database this process opened by URL; ``close`` (or leaving
    its ``with`` block) closes its connections."""

    def __enter__(self) -> OpenStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_store(url: str, *, upgrade: bool = False) -> OpenStore:
    """The database at ``url`` as a store; with ``upgrade``, its schema brought to this
    release's head first (creating it in an empty database). ``ConfigurationError``
    for a URL that is not SQLite or PostgreSQL."""
    store = OpenStore(create_engine(url))
    if upgrade:
        try:
            migrations.upgrade(store.engine)
        except BaseException:
            store.close()
            raise
    return store


@contextmanager
def _engine(url: str) -> Iterator[sa.Engine]:
    engine = create_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


def migration_scripts() -> ScriptDirectory:
    """The Alembic migrations shipped with this release."""
    config = Config()
    config.set_main_option("script_location", str(migrations.HERE))
    return ScriptDirectory.from_config(config)


def schema_revision(url: str) -> str | None:
    """The schema revision of the database at ``url``; None when it has no schema."""
    with _engine(url) as engine:
        return migrations.current_revision(engine)


def readable_tables(url: str) -> set[str]:
    """The tables of this release's schema that the database at ``url`` holds with
    every column this release reads (one at an older schema lacks some)."""
    with _engine(url) as engine:
        inspector = sa.inspect(engine)
        present = set(inspector.get_table_names())
        return {
            name
            for name, table in tables.metadata.tables.items()
            if name in present
            and {column["name"] for column in inspector.get_columns(name)}
            >= set(table.columns.keys())
        }


def holds_no_schema(url: str) -> bool:
    """Whether the database at ``url`` has no schema revision and none of this
    release's tables (what ``drop_schema`` would drop is then only what this process
    makes next)."""
    with _engine(url) as engine:
        if migrations.current_revision(engine) is not None:
            return False
        found = set(sa.inspect(engine).get_table_names())
    return not found & {*tables.metadata.tables, "alembic_version"}


def upgrade_schema(url: str) -> None:
    """Apply the migrations the database at ``url`` lacks (see ``migrations.upgrade``)."""
    with _engine(url) as engine:
        migrations.upgrade(engine)


def downgrade_schema(url: str, revision: str) -> None:
    """Undo the migrations of the database at ``url`` above ``revision`` (Alembic's
    ``downgrade``, in one write transaction). Whether they may be undone is the
    caller's decision."""
    from alembic import command

    with _engine(url) as engine, engine.connect() as connection:
        connection.execution_options(tenure_write=True)
        with connection.begin():
            command.downgrade(migrations.alembic_config(connection), revision)


def sqlite_file(url: str) -> Path | None:
    """The file behind a ``sqlite:///`` URL, or None for other databases."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        return Path(parsed.database or "")
    return None


def postgres_url(conninfo: str, database: str) -> str:
    """The SQLAlchemy URL of ``database`` on the PostgreSQL server the libpq
    ``conninfo`` names (its user, password, host and port)."""
    from psycopg.conninfo import conninfo_to_dict

    info = conninfo_to_dict(conninfo)
    url = sa.engine.URL.create(
        "postgresql+psycopg",
        username=str(info.get("user", "postgres")),
        password=str(info["password"]) if "password" in info else None,
        host=str(info.get("host", "127.0.0.1")),
        port=int(info.get("port") or 5432),
        database=database,
    )
    return url.render_as_string(hide_password=False)


def sqlite_url(path: Path) -> str:
    """The URL of the SQLite database file ``path``."""
    return f"sqlite:///{path.as_posix()}"


def copy_sqlite(path: Path, copy: Path) -> None:
    """Copy the SQLite database ``path`` to ``copy`` with SQLite's online backup (one
    consistent read; ``path`` is opened read-only and not written)."""
    source = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    target = sqlite3.connect(copy)
    try:
        with target:
            source.backup(target)
    finally:
        source.close()
        target.close()


def _connections(*txs: Transaction) -> list[sa.Connection]:
    if not all(isinstance(tx, SqlTransaction) for tx in txs):
        raise TypeError("a backend migration runs between SQL stores")
    return [tx.connection for tx in txs if isinstance(tx, SqlTransaction)]


def copy_tables(source: Transaction, target: Transaction, account: str) -> None:
    """Make ``target``'s rows of ``account`` in every copied table ``source``'s (the
    table copy of a backend migration: ``table_copy.copy_tables``). Both must be SQL
    stores' transactions (``TypeError`` otherwise)."""
    src, dst = _connections(source, target)
    table_copy.copy_tables(src, dst, account)


def row_counts(tx: Transaction, account: str) -> dict[str, int]:
    """The rows of ``account`` in every table of the schema (``table_copy.TABLE_PLAN``)."""
    (conn,) = _connections(tx)
    return table_copy.row_counts(conn, account)


def table_digests(tx: Transaction, account: str) -> dict[str, str]:
    """A digest of the rows of ``account`` in every copied table
    (``table_copy.table_digests``)."""
    (conn,) = _connections(tx)
    return table_copy.table_digests(conn, account)


def delete_account(tx: Transaction, account: str) -> None:
    """Delete every row of ``account`` in every table of the schema."""
    (conn,) = _connections(tx)
    table_copy.delete_account(conn, account)


def drop_schema(url: str) -> None:
    """Drop every Tenure table, and Alembic's version table, of the database at
    ``url`` (in one transaction on PostgreSQL, where DDL is transactional): for a
    schema this process created in an empty database moments ago, such as the target
    of a restore or migration that failed. What to drop is the caller's decision."""
    with _engine(url) as engine, engine.connect() as connection:
        connection.execution_options(tenure_write=True)
        with connection.begin():
            table_copy.drop_schema(connection)


def remove_sqlite(path: Path, created_dir: Path | None = None) -> None:
    """Delete the SQLite database ``path`` with its journal files (``-wal``, ``-shm``,
    ``-journal``) and its writer lock; no error for those that do not exist. With
    ``created_dir`` (an ancestor of ``path``), remove the directories from ``path``'s
    up to it too, those that are then empty."""
    for suffix in ("", "-wal", "-shm", "-journal", "-writer.lock"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    if created_dir is None:
        return
    for folder in [path.parent, *path.parent.parents]:
        try:
            folder.rmdir()
        except OSError:
            return
        if folder == created_dir:
            return
