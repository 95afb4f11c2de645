"""What a database error says: the store is unavailable, or one value cannot be stored.

The two questions the rest of the code asks of an exception raised by SQLAlchemy
or straight by a driver (``tenure.store.raw`` bypasses SQLAlchemy on hot paths):

- ``is_unavailable``: the database cannot serve any statement right now. The
  connection was lost or refused, the server is shutting down, restarting or out
  of disk or connections, or the file is locked. This passes by itself, so the API
  answers 503 ``storage_unavailable`` with ``Retry-After``, and the ledger writer
  does not split a batch over it (every part would fail the same way).
- ``is_unstorable``: the database refused a value of the statement (PostgreSQL data
  exceptions, class 22, such as a NUL character in text; program limits, class 54,
  such as an index row over its size; SQLite's ``TOOBIG``; a string no driver can
  encode as UTF-8). The request that
  carried the value is at fault, not the store.

Anything else (a constraint violated, a bug) is neither.
"""

from __future__ import annotations

import sqlite3

import sqlalchemy as sa

_PG_UNAVAILABLE = frozenset({"08", "53", "57", "58"})
"""SQLSTATE classes of a server that cannot take statements now: connection
exception, insufficient resources, operator intervention (shutdown, restart),
system error (I/O)."""
_PG_UNSTORABLE = frozenset({"22", "54"})
"""SQLSTATE classes of a value refused: data exception, program limit exceeded."""

_SQLITE_UNAVAILABLE = frozenset({5, 6, 7, 10, 13, 14, 15})
"""Primary result codes: BUSY, LOCKED, NOMEM, IOERR, FULL, CANTOPEN, PROTOCOL."""
_SQLITE_TOOBIG = 18


def is_unavailable(error: BaseException) -> bool:
    """Whether ``error`` says the database cannot serve any statement now; see the
    module doc."""
    if isinstance(error, sa.exc.TimeoutError):  # no pooled connection came free
        return True
    if isinstance(error, sa.exc.DBAPIError) and error.connection_invalidated:
        return True
    driver = _driver_error(error)
    if isinstance(driver, sqlite3.Error):
        return _sqlite_code(driver) in _SQLITE_UNAVAILABLE
    sqlstate = _sqlstate(driver)
    if sqlstate is None:
        # psycopg raises OperationalError without a SQLSTATE when it cannot connect or
        # the connection broke, and InterfaceError when it is already closed.
        return _is_psycopg(driver) and type(driver).__name__ in (
            "OperationalError",
            "InterfaceError",
        )
    return sqlstate[:2] in _PG_UNAVAILABLE


def is_unstorable(error: BaseException) -> bool:
    """Whether ``error`` says the database refused a value of the statement; see the
    module doc. A string the driver cannot encode as UTF-8 (a lone surrogate, as a
    byte that is not UTF-8 in a command-line argument becomes) counts too."""
    if isinstance(error, UnicodeEncodeError):
        return True
    driver = _driver_error(error)
    if isinstance(driver, sqlite3.Error):
        return isinstance(driver, sqlite3.DataError) or _sqlite_code(driver) == _SQLITE_TOOBIG
    if not _is_psycopg(driver):
        return isinstance(error, sa.exc.DataError)
    sqlstate = _sqlstate(driver)
    # psycopg refuses a NUL in text itself, before the server sees it: no SQLSTATE.
    return type(driver).__name__ == "DataError" or (
        sqlstate is not None and sqlstate[:2] in _PG_UNSTORABLE
    )


def _driver_error(error: BaseException) -> BaseException:
    """The driver's exception inside SQLAlchemy's wrapper (or ``error`` itself)."""
    if isinstance(error, sa.exc.DBAPIError) and isinstance(error.orig, BaseException):
        return error.orig
    return error


def _is_psycopg(error: BaseException) -> bool:
    # By module, not isinstance: the CLI need not import psycopg to classify errors.
    return type(error).__module__.split(".")[0] == "psycopg"


def _sqlstate(error: BaseException) -> str | None:
    sqlstate = getattr(error, "sqlstate", None)
    return sqlstate if isinstance(sqlstate, str) and len(sqlstate) == 5 else None


def _sqlite_code(error: sqlite3.Error) -> int | None:
    code = getattr(error, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def database_errors() -> tuple[type[Exception], ...]:
    """What drivers and SQLAlchemy raise. The raw statements of the hot paths
    (``tenure.store.raw``) raise the drivers' own errors, not SQLAlchemy's."""
    import psycopg  # when an app is built, not when the CLI imports this module

    return sa.exc.SQLAlchemyError, sqlite3.Error, psycopg.Error
