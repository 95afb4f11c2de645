"""A dataclass value's fields as a mapping, for the answers and records that are
exactly a value's fields."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


def field_values(value: DataclassInstance, omit: Collection[str] = ()) -> dict[str, Any]:
    """``value``'s fields by name, in the order the class declares them, except those
    named in ``omit``. The values are not copied: ``dataclasses.asdict`` deep-copies
    every field, which answers need not pay for."""
    return {f.name: getattr(value, f.name) for f in fields(value) if f.name not in omit}
