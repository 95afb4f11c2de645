"""The ``tenure`` CLI run against a server (``TENURE_URL``, ``TENURE_API_KEY``) and
what its answers should look like."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from support.cli import subprocess_env, tenure_executable
from support.server import Server


def tenure(
    server: Server, *args: str, key: str | None = None, url: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the ``tenure`` CLI against ``server`` (as its owner unless ``key`` is given)."""
    env = subprocess_env(
        TENURE_URL=url or server.url,
        TENURE_API_KEY=key if key is not None else server.owner_key(),
    )
    return subprocess.run(
        [tenure_executable(), *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def ok_json(done: subprocess.CompletedProcess[str]) -> Any:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def assert_one_line_error(done: subprocess.CompletedProcess[str], *needles: str) -> str:
    """A failed command (not a usage error) that printed one line naming ``needles``."""
    assert done.returncode not in (0, 2), (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]
