"""The sidecar: the last signed checkpoint of each account, kept outside the database.

A database restored from an old backup, or truncated, would otherwise be able to
sign a checkpoint that contradicts one already published. The sidecar lives next
to the SQLite file (``tenure.db.checkpoints/<account>.checkpoint``) and is written
atomically after each checkpoint commits.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

from tenure.crypto.files import write_atomic
from tenure.errors import MalformedNote
from tenure.ledger.checkpoint import Checkpoint, parse_checkpoint
from tenure.ledger.note import parse_note


class Sidecar:
    """Reads and writes the sidecar files in one directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @classmethod
    def beside(cls, database_path: Path) -> Sidecar:
        return cls(database_path.with_name(database_path.name + ".checkpoints"))

    def path(self, account: str) -> Path:
        return self.directory / f"{account}.checkpoint"

    def read_note(self, account: str) -> str | None:
        path = self.path(account)
        return path.read_text(encoding="utf-8") if path.exists() else None

    def read(self, account: str) -> Checkpoint | None:
        """The checkpoint in the sidecar (signature not checked here), or None."""
        note = self.read_note(account)
        if note is None:
            return None
        try:
            text, _ = parse_note(note)
            return parse_checkpoint(text)
        except MalformedNote as exc:
            raise MalformedNote(f"sidecar {self.path(account)} is not a signed checkpoint") from exc

    def write(self, account: str, note: str) -> None:
        write_atomic(self.path(account), note.encode("utf-8"))


Verdict = Literal["agrees", "ahead", "disagrees"]
"""How a store's tree compares with the sidecar's checkpoint."""


def compare(signed: Checkpoint, origin: str, size: int, root_at: Callable[[int], bytes]) -> Verdict:
    """Compare the sidecar's checkpoint ``signed`` with a store whose ledger has origin
    ``origin`` and ``size`` events, ``root_at(n)`` being the root of its first ``n``.

    ``ahead`` when the checkpoint signed more events than the store holds (events are
    missing), ``disagrees`` when the store's tree of that size has another root (not
    the store that signed it), else ``agrees`` — also for the final checkpoint of an
    earlier epoch (another origin), which this ledger follows. The one comparison of
    the ledger writer (before it appends) and of ``ledger verify``."""
    if signed.origin != origin:
        return "agrees"
    if signed.size > size:
        return "ahead"
    return "agrees" if root_at(signed.size) == signed.root else "disagrees"
