"""C2SP tlog-checkpoint bodies: origin line, tree size, base64 root hash.

Tenure writes no extension lines. When parsing, extension lines are refused: a
checkpoint of ours that carries one has been altered.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from tenure.errors import MalformedNote
from tenure.ledger.merkle import HASH_SIZE
from tenure.ledger.note import NoteSigner, NoteVerifier, check_key_name, open_note, sign_note


@dataclass(frozen=True)
class Checkpoint:
    """A tree head: ``size`` leaves with root hash ``root`` in the log named ``origin``."""

    origin: str
    size: int
    root: bytes

    def body(self) -> str:
        """The checkpoint text that signatures cover."""
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"

    @property
    def root_b64(self) -> str:
        return base64.b64encode(self.root).decode()


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse a checkpoint body; raise ``MalformedNote`` if it is not exactly one."""
    lines = text.split("\n")
    if len(lines) != 4 or lines[3] != "":
        raise MalformedNote("checkpoint must have exactly three lines: origin, size, root")
    origin, size_text, root_text = lines[:3]
    check_key_name(origin)
    if (
        not (size_text.isascii() and size_text.isdigit())
        or len(size_text) > 20
        or (size_text != "0" and size_text.startswith("0"))
    ):
        raise MalformedNote("checkpoint size is not a decimal number")
    try:
        root = base64.b64decode(root_text, validate=True)
    except (ValueError, binascii.Error) as exc:  # ValueError: non-ASCII text
        raise MalformedNote("checkpoint root is not valid base64") from exc
    if len(root) != HASH_SIZE:
        raise MalformedNote("checkpoint root is not a SHA-256 hash")
    if base64.b64encode(root).decode() != root_text:
        raise MalformedNote("checkpoint root is not canonical base64")
    return Checkpoint(origin, int(size_text), root)


def sign_checkpoint(checkpoint: Checkpoint, signers: Sequence[NoteSigner]) -> str:
    """Return the signed note of ``checkpoint``; every signer's name must be the origin."""
    for signer in signers:
        if signer.name != checkpoint.origin:
            raise MalformedNote(f"key {signer.name} cannot sign for origin {checkpoint.origin}")
    return sign_note(checkpoint.body(), signers)


def open_checkpoint(note: str, verifiers: Iterable[NoteVerifier]) -> Checkpoint:
    """Verify a signed checkpoint and return it.

    The checkpoint must be signed by a trusted key whose name equals its origin.
    Raises ``MalformedNote`` or ``UnverifiedNote``.
    """
    text, names = open_note(note, verifiers)
    checkpoint = parse_checkpoint(text)
    if checkpoint.origin not in names:
        raise MalformedNote(f"checkpoint for {checkpoint.origin} is not signed by its origin key")
    return checkpoint
