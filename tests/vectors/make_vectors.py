"""Writes docs/vectors/: conformance vectors for Tenure's formats, for implementers
in other languages (docs/vectors/README.md).

    .venv/bin/python -m tests.vectors.make_vectors [TARGET_DIR]

Everything comes from the fixed world of ``world.py`` (labelled seeds, a fixed clock),
so a run writes the same bytes every time; ``test_vectors_reproducible.py`` fails
when the committed files differ from what this code makes. Files in the target that
it does not make are removed, except README.md.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tenure.crypto.license_file import LEEWAY as LICENSE_FILE_LEEWAY
from tenure.crypto.license_file import TYP as LICENSE_FILE_TYP
from tenure.sdk import REVOCATIONS_TYP, TOKEN_TYP

from .collection import Collection, json_bytes
from .keyset_vectors import build_keys
from .ledger_vectors import build_ledger
from .license_file_vectors import build_license_files
from .revocation_vectors import build_revocation_lists
from .token_vectors import TokenVectors
from .world import NOW, TOKEN_LEEWAY

TARGET = Path(__file__).parents[2] / "docs" / "vectors"
MANIFEST = "manifest.json"
KEPT = frozenset({"README.md"})
FORMAT = "tenure-conformance-vectors v1"
FILE_INPUTS = frozenset(
    {"jwks", "keyset", "ledger_key", "revocations", "checkpoint", "old_checkpoint", "events"}
)
"""Inputs whose value is the path of another file of the vectors."""
KIND_ORDER = (
    "keyset-note",
    "offline-token",
    "revocation-list",
    "license-file",
    "checkpoint",
    "inclusion",
    "consistency",
)


def collect() -> Collection:
    """Every vector file and manifest entry, in a fixed order."""
    out = Collection()
    checkpoint = build_ledger(out)
    build_keys(out, f"ledger/checkpoint-{checkpoint['size']}.note")
    tokens = TokenVectors(out, checkpoint)
    tokens.build()
    build_revocation_lists(out)
    build_license_files(out, checkpoint, out.files["tokens/valid.jwt"].decode("ascii"))
    check_inputs(out)
    return out


def check_inputs(out: Collection) -> None:
    """Every file a vector's inputs name was written."""
    for vector in out.vectors:
        for name, value in vector["inputs"].items():
            if name in FILE_INPUTS and value not in out.files:
                raise ValueError(f"{vector['id']}: input {name} names {value}, never written")


def manifest(out: Collection) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "generator": "tests/vectors/make_vectors.py",
        "now": NOW,
        "now_utc": datetime.fromtimestamp(NOW, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "typ": {
            "offline-token": TOKEN_TYP,
            "revocation-list": REVOCATIONS_TYP,
            "license-file": LICENSE_FILE_TYP,
        },
        "leeway": {
            "offline-token": TOKEN_LEEWAY,
            "revocation-list": TOKEN_LEEWAY,
            "license-file": LICENSE_FILE_LEEWAY,
        },
        "vectors": sorted(out.vectors, key=lambda vector: KIND_ORDER.index(vector["kind"])),
    }


def build() -> dict[str, bytes]:
    """The exact contents of docs/vectors/ (README.md aside), path → bytes."""
    out = collect()
    return {**out.files, MANIFEST: json_bytes(manifest(out))}


def write(target: Path) -> None:
    """Write the vectors into ``target`` and remove files there that are no longer made."""
    files = build()
    for relative, content in files.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    for path in sorted(target.rglob("*"), reverse=True):
        relative = path.relative_to(target).as_posix()
        if path.is_file() and relative not in files and relative not in KEPT:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()


def main(argv: list[str]) -> None:
    target = Path(argv[0]) if argv else TARGET
    write(target)
    print(f"wrote {len(build())} files to {target}")


if __name__ == "__main__":
    main(sys.argv[1:])
