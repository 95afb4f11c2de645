"""Node's ``jose`` (Debian's node-jose), the third-party JWS verifier of the tests."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from support.required import missing_tool

NODE_VERIFIER = Path(__file__).resolve().parents[1] / "e2e" / "nodeverify" / "verify.js"
NODE_JOSE = Path("/usr/share/nodejs/jose")


def node_verify(
    jwks: dict[str, Any], text: str, issuer: str, audience: str, typ: str, scratch: Path
) -> subprocess.CompletedProcess[str]:
    """``node nodeverify/verify.js``: panva's ``jose`` verifies the JWS ``text`` of
    ``typ`` with the key set ``jwks`` alone. Skips without Node and Debian's
    node-jose (fails under ``make test`` and on CI, where they must be installed)."""
    node = shutil.which("node")
    if node is None or not NODE_JOSE.is_dir():
        missing_tool("node and Debian's node-jose are needed (apt-get install nodejs node-jose)")
    jwks_file = scratch / "jwks.json"
    jwks_file.write_text(json.dumps(jwks))
    return subprocess.run(
        [node, str(NODE_VERIFIER), str(jwks_file), text, issuer, audience, typ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
