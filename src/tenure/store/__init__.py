"""Storage adapters: SQLAlchemy Core tables, the SQL store, Alembic migrations."""
