"""The read generation (docs/state.md, "Checks from proven rows in memory"): a counter
per account that every change to a row a check reads moves, so that a server may
answer checks from rows it proved earlier for as long as the counter stands.

Triggers move it, not the code that writes: a row changed by anything — this
release's writer, another server on the same database, an operator with ``sqlite3``
— moves it, and every server's next check reads the rows again and proves them.
The counter only says *whether* to read again; what a check answers is always a row
proven against the signed state (``tenure.service.state_guard``).

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"


def _string(length: int) -> sa.types.TypeEngine[str]:
    # As in tenure.store.tables: TEXT on PostgreSQL, which enforces VARCHAR lengths.
    return sa.String(length).with_variant(sa.Text(), "postgresql")


WATCHED = (
    "proj_licenses",
    "proj_plan_versions",
    "proj_legacy_ids",
    "api_keys",
    "ledger_checkpoints",
    "ledger_heads",
)
"""The tables whose rows a check or its credential reads (each has ``account``)."""


def _bump(rows: str) -> str:
    """Move the generation of each account of ``rows`` (a ``FROM`` or ``VALUES``)."""
    return (
        f"INSERT INTO read_generation (account, n) {rows} "
        "ON CONFLICT (account) DO UPDATE SET n = read_generation.n + 1"
    )


def upgrade() -> None:
    op.create_table(
        "read_generation",
        sa.Column("account", _string(64), primary_key=True),
        sa.Column("n", sa.BigInteger, nullable=False),
        sqlite_with_rowid=False,
    )
    if op.get_bind().dialect.name == "postgresql":
        _upgrade_postgresql()
        return
    for table in WATCHED:
        for change, row in (("INSERT", "NEW"), ("UPDATE", "NEW"), ("DELETE", "OLD")):
            op.execute(
                f"CREATE TRIGGER {table}_read_generation_{change.lower()} "
                f"AFTER {change} ON {table} "
                f"BEGIN {_bump(f'VALUES ({row}.account, 1)')}; END"
            )


# PostgreSQL: each change is also announced on the channel ``tenure_read_generation``
# (``tenure.store.notify``), so that servers learn of it without reading the counter
# at every check.


def _upgrade_postgresql() -> None:
    # Once per statement, over the rows it changed (a transition table, which a
    # trigger may declare for one event only: one trigger per event). The
    # notification is delivered when, and only if, the transaction commits.
    bump = _bump("SELECT DISTINCT account, 1 FROM changed")
    announce = (
        "PERFORM pg_notify('tenure_read_generation', account) "
        "FROM (SELECT DISTINCT account FROM changed) AS a"
    )
    op.execute(
        "CREATE OR REPLACE FUNCTION tenure_bump_read_generation() RETURNS trigger "
        f"LANGUAGE plpgsql AS $$ BEGIN {bump}; {announce}; RETURN NULL; END $$"
    )
    op.execute(
        "CREATE OR REPLACE FUNCTION tenure_bump_every_read_generation() RETURNS trigger "
        "LANGUAGE plpgsql AS $$ BEGIN UPDATE read_generation SET n = n + 1; "
        "PERFORM pg_notify('tenure_read_generation', '*'); RETURN NULL; END $$"
    )
    for table in WATCHED:
        for change, rows in (("INSERT", "NEW"), ("UPDATE", "NEW"), ("DELETE", "OLD")):
            op.execute(
                f"CREATE TRIGGER {table}_read_generation_{change.lower()} "
                f"AFTER {change} ON {table} REFERENCING {rows} TABLE AS changed "
                "FOR EACH STATEMENT EXECUTE FUNCTION tenure_bump_read_generation()"
            )
        op.execute(
            f"CREATE TRIGGER {table}_read_generation_truncate AFTER TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION tenure_bump_every_read_generation()"
        )


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for table in WATCHED:
        for change in ("insert", "update", "delete", "truncate"):
            name = f"{table}_read_generation_{change}"
            op.execute(f"DROP TRIGGER IF EXISTS {name}" + (f" ON {table}" if postgresql else ""))
    if postgresql:
        op.execute("DROP FUNCTION IF EXISTS tenure_bump_read_generation()")
        op.execute("DROP FUNCTION IF EXISTS tenure_bump_every_read_generation()")
    op.drop_table("read_generation")
