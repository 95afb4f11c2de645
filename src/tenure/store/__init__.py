"""Storage adapters: SQLAlchemy Core tables, the SQL store, Alembic migrations.

Each noun of the store has a module, ``store/<noun>.py``: its records (frozen
dataclasses), the noun in domain terms as a ``Protocol`` (what a transaction offers
as ``tx.<noun>``, e.g. ``Accounts`` as ``tx.accounts``) and ``Sql<Noun>``, which
holds its SQL (SQLite and PostgreSQL); ``store/memory/<noun>.py`` is the same noun in
memory.
"""
