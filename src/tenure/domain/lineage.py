"""Key lineage: which API key created which, and when two keys act for one principal.

Every API key records the key that created it (``api_keys.created_by``). Following it
upward gives a key's *line*: the key, its creator, that key's creator, and so on up
to a *top*, a key that no key of the account created. Tops are the bootstrap owner
key, an account's first owner key, keys made directly on the storage, and keys made
before lineage was recorded (migration 0011), whose creator is unknown.

Whoever holds a key can make more keys with it, so the keys a key made (directly or
through its keys) act for it. Two keys act for one principal when one is in the
other's line, or when their lines meet below the top: then one key that is not a top
made both. Keys that only share a top are different principals, so the bootstrap
key makes the people's keys and they check each other.

Pure: the service loads the creators (``tenure.service.apikeys.creators``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class KeyLineage:
    """One API key as the two-person rule sees it."""

    line: tuple[str, ...]
    """The key's id, then its creators, nearest first, up to a top."""
    created_at: str
    """When the key was created (RFC 3339, as ``format_time`` spells it); empty for
    a key the store does not hold."""

    @property
    def key(self) -> str:
        return self.line[0]

    def made_by(self, key: str) -> bool:
        """Whether ``key`` created this key, directly or through keys it created."""
        return key in self.line[1:]

    def makers_below_top(self) -> frozenset[str]:
        """The keys above this one that are not its top."""
        return frozenset(self.line[1:-1])


def line_of(key: str, creators: Mapping[str, str | None]) -> tuple[str, ...]:
    """``key`` and its creators, nearest first, from ``creators`` (key id → the id of
    the key that created it, or None).

    The line ends at a key whose creator is None or not in ``creators`` (a key of
    another account created the account's first owner key). A cycle, which the
    service never writes, ends it where it would repeat a key.
    """
    line = [key]
    creator = creators.get(key)
    while creator is not None and creator in creators and creator not in line:
        line.append(creator)
        creator = creators[creator]
    return tuple(line)


def lineage_of(
    key: str, creators: Mapping[str, str | None], created: Mapping[str, str]
) -> KeyLineage:
    """The lineage of ``key``: its line and when it was created (``created``: key id
    → ``created_at``)."""
    return KeyLineage(line_of(key, creators), created.get(key, ""))


def same_principal(one: KeyLineage, other: KeyLineage) -> str | None:
    """Why ``one`` acts for the same principal as ``other`` (a sentence about
    ``one``, naming ``other`` "the requesting key"), or None when they are
    independent."""
    if one.key == other.key:
        return "this key is the requesting key"
    if one.made_by(other.key):
        return "this key was created by the requesting key (directly or through keys it created)"
    if other.made_by(one.key):
        return "this key created the requesting key (directly or through keys it created)"
    shared = one.makers_below_top() & other.makers_below_top()
    if shared:
        return (
            f"this key and the requesting key were made by the same key ({min(shared)}), "
            "which acts through both"
        )
    return None
