"""Text that every backend can store as it is.

PostgreSQL refuses a NUL character in a text value (SQLite keeps it), and a lone
surrogate (``"\\ud800"`` in JSON or YAML) is not Unicode text at all: no driver can
encode it as UTF-8. Input is checked against these rules at the edge
(``tenure.api.parameters``, ``tenure.api.bodies``, the catalog parser), so that such
a value is a 400 naming its field on every backend instead of a database error in
the middle of somebody else's write batch. Pure functions, no I/O.
"""

from __future__ import annotations

from typing import Any

Path = list[int | str]
"""Where a value sits in a parsed document: member names and list indexes."""


def text_problem(value: str, limit: int | None = None) -> str | None:
    """Why ``value`` cannot be stored as it is (``"holds a NUL character"``), or None
    when it can: it contains a NUL character, it is not valid UTF-8 (a lone
    surrogate), or it is longer than ``limit`` characters."""
    if limit is not None and len(value) > limit:
        return f"is longer than {limit} characters"
    if "\x00" in value:
        return "holds a NUL character"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "is not valid UTF-8 (it holds a lone surrogate)"
    return None


_Link = tuple[Any, int | str] | None
"""Where a value sits: ``(its parent's link, its name or index)``; None at the root."""


def first_unstorable(document: Any, limit: int | None = None) -> tuple[Path, str] | None:
    """The first string of a parsed JSON or YAML value (member names included) that
    ``text_problem`` refuses, as ``(path, why)``; None when every string can be stored.

    A bad member name is reported at the path of its object. Iterative, and each
    value keeps only a link to its parent, so no nesting exhausts the stack or costs
    more than linear time; members are visited in document order."""
    pending: list[tuple[Any, _Link]] = [(document, None)]
    while pending:
        value, link = pending.pop()
        if isinstance(value, str):
            problem = text_problem(value, limit)
            if problem is not None:
                return _path(link), problem
        elif isinstance(value, dict):
            children: list[tuple[Any, _Link]] = []
            for name, member in value.items():
                if isinstance(name, str) and (problem := text_problem(name, limit)):
                    return _path(link), f"has a member name that {problem}"
                children.append((member, (link, name)))
            pending.extend(reversed(children))
        elif isinstance(value, list):
            pending.extend(reversed([(item, (link, i)) for i, item in enumerate(value)]))
    return None


def _path(link: _Link) -> Path:
    path: Path = []
    while link is not None:
        link, part = link
        path.append(part)
    return path[::-1]


def spell(path: Path, whole: str = "body") -> str:
    """``["checks", 3, "license"]`` → ``checks[3].license``; ``whole`` for ``[]``."""
    name = ""
    for part in path:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else part)
    return name or whole
