"""Typed reads of stored columns, for code that must treat rows as hostile.

SQLite keeps whatever type a statement wrote, whatever the column's declared type:
a row edited with ``sqlite3`` can hold TEXT in a BLOB column or a word in an INTEGER
one. ``bytes(text)`` then raises ``TypeError`` and ``"x" > 3`` does too, so the
verifiers (``ledger verify``, ``audit verify``) and the reads under them take their
values through these functions: a value of the wrong type is tampering, reported
as ``LedgerTampered`` (or the ``error`` given, e.g. ``AuditTampered``) naming the
row's seq, like any other altered row.
"""

from __future__ import annotations

from tenure.errors import LedgerTampered


def blob(
    value: object, what: str, seq: int | None, error: type[LedgerTampered] = LedgerTampered
) -> bytes:
    """``value`` of a BLOB column as bytes; ``error`` naming ``seq`` if it is not one."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise error(f"{what} is stored as {_kind(value)}, not bytes", seq=seq)


def integer(
    value: object, what: str, seq: int | None, error: type[LedgerTampered] = LedgerTampered
) -> int:
    """``value`` of an INTEGER column; ``error`` naming ``seq`` if it is not an integer."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise error(f"{what} is stored as {_kind(value)}, not an integer", seq=seq)


def text(
    value: object, what: str, seq: int | None, error: type[LedgerTampered] = LedgerTampered
) -> str:
    """``value`` of a TEXT column; ``error`` naming ``seq`` if it is not text."""
    if isinstance(value, str):
        return value
    raise error(f"{what} is stored as {_kind(value)}, not text", seq=seq)


def _kind(value: object) -> str:
    return {str: "text", bytes: "a blob", int: "an integer", float: "a real"}.get(
        type(value), "null" if value is None else type(value).__name__
    )
