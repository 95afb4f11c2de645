"""C2SP tlog-checkpoint bodies: origin line, tree size, base64 root hash, and Tenure's
one extension line, ``tenure-state <base64 state-map root>`` (docs/state.md), in every
checkpoint signed since 0.3.0.

When parsing, any other extension line is refused: a checkpoint of ours that
carries one has been altered.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from tenure.errors import MalformedNote
from tenure.ledger.merkle import HASH_SIZE
from tenure.ledger.note import NoteSigner, NoteVerifier, check_key_name, open_note, sign_note

STATE_LINE = "tenure-state"


@dataclass(frozen=True)
class Checkpoint:
    """A tree head: ``size`` leaves with root hash ``root`` in the log named ``origin``."""

    origin: str
    size: int
    root: bytes
    state: bytes | None = None
    """The state map's root after exactly ``size`` events; None in checkpoints signed
    before 0.3.0."""

    def body(self) -> str:
        """The checkpoint text that signatures cover."""
        body = f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"
        if self.state is not None:
            body += f"{STATE_LINE} {base64.b64encode(self.state).decode()}\n"
        return body

    @property
    def root_b64(self) -> str:
        return base64.b64encode(self.root).decode()


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse a checkpoint body; raise ``MalformedNote`` if it is not exactly one."""
    lines = text.split("\n")
    if len(lines) not in (4, 5) or lines[-1] != "":
        raise MalformedNote(
            f"checkpoint must have three lines (origin, size, root) and at most a {STATE_LINE} line"
        )
    origin, size_text, root_text = lines[:3]
    state = None
    if len(lines) == 5:
        name, _, state_text = lines[3].partition(" ")
        if name != STATE_LINE:
            raise MalformedNote(f"checkpoint extension line is not a {STATE_LINE} line")
        state = _hash(state_text, "state root")
    check_key_name(origin)
    if (
        not (size_text.isascii() and size_text.isdigit())
        or len(size_text) > 20
        or (size_text != "0" and size_text.startswith("0"))
    ):
        raise MalformedNote("checkpoint size is not a decimal number")
    return Checkpoint(origin, int(size_text), _hash(root_text, "root"), state)


def _hash(text: str, what: str) -> bytes:
    try:
        value = base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error) as exc:  # ValueError: non-ASCII text
        raise MalformedNote(f"checkpoint {what} is not valid base64") from exc
    if len(value) != HASH_SIZE:
        raise MalformedNote(f"checkpoint {what} is not a SHA-256 hash")
    if base64.b64encode(value).decode() != text:
        raise MalformedNote(f"checkpoint {what} is not canonical base64")
    return value


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
