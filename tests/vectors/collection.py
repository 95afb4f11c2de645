"""What the generator collects: the files of docs/vectors/ and the manifest's entries."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

JWKS = "keys/jwks.json"
KEYSET = "keys/keyset.note"
OLD_KEYSET = "keys/keyset-old.note"
LEDGER_KEY = "keys/ledger.vkey"
"""Files many vectors name as inputs."""

ACCEPT = "accept"
REJECT = "reject"


def accept(**facts: Any) -> dict[str, Any]:
    """The expectation of a vector that verifies; ``facts`` say what it yields."""
    return {"verdict": ACCEPT, **facts}


def reject(reason: str, **facts: Any) -> dict[str, Any]:
    """The expectation of a vector that must be refused for ``reason``."""
    return {"verdict": REJECT, "reason": reason, **facts}


def json_bytes(value: Any) -> bytes:
    """The one way the vectors write JSON: two-space indent, UTF-8, a final newline."""
    return (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


@dataclass
class Collection:
    """Files by path (relative to docs/vectors/) and the vectors that use them."""

    files: dict[str, bytes] = field(default_factory=dict)
    vectors: list[dict[str, Any]] = field(default_factory=list)

    def file(self, path: str, content: str | bytes) -> str:
        """Add a file and return its path; a path is written once, with one content."""
        raw = content.encode("utf-8") if isinstance(content, str) else content
        if self.files.get(path, raw) != raw:
            raise ValueError(f"{path} is written twice with different contents")
        self.files[path] = raw
        return path

    def json_file(self, path: str, value: Any) -> str:
        return self.file(path, json_bytes(value))

    def vector(
        self,
        kind: str,
        name: str,
        file: str,
        description: str,
        inputs: dict[str, Any],
        expect: dict[str, Any],
    ) -> None:
        """Add vector ``<kind>/<name>``: ``file`` checked with ``inputs`` gives ``expect``."""
        vector_id = f"{kind}/{name}"
        if any(known["id"] == vector_id for known in self.vectors):
            raise ValueError(f"vector id {vector_id} is used twice")
        if file not in self.files:
            raise ValueError(f"vector {vector_id} names {file}, which was not written")
        self.vectors.append(
            {
                "id": vector_id,
                "kind": kind,
                "file": file,
                "description": description,
                "inputs": inputs,
                "expect": expect,
            }
        )
