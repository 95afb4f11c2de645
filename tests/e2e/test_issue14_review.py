"""What a review of issue 14 found still open, probed as an attacker would: over real
HTTP against a real ``tenure serve``, and with the real CLI as an operator runs it.

- Input every backend can store: the console's forms are an edge too, and so are
  command-line arguments (a byte that is not UTF-8 reaches Python as a lone
  surrogate).
- The two-person rule with the README's first steps: a stolen person's key can still
  be revoked once the bootstrap key is retired.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.cli import subprocess_env, tenure_executable
from support.remote import assert_one_line_error, tenure
from support.server import Server, running_server, seed_data_dir, start_server

NOT_UTF8 = os.fsdecode(b"cus_\xff")
"""A command-line argument holding the byte 0xff, as Python hands it over."""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("review14") / "data"
    seed_data_dir(data_dir, events=20)
    with running_server(data_dir, tmp_path_factory.mktemp("review14-logs")) as running:
        yield running


@pytest.fixture(scope="module")
def owner(server: Server) -> Iterator[httpx.Client]:
    with server.client(server.owner_key()) as client:
        yield client


def ledger_size(owner: httpx.Client) -> int:
    size: int = owner.get("/v1/ledger/events", params={"limit": 1}).json()["size"]
    return size


def a_license(owner: httpx.Client) -> dict[str, Any]:
    listed = owner.get("/v1/licenses", params={"status": "active", "limit": 1})
    assert listed.status_code == 200, listed.text
    license: dict[str, Any] = listed.json()["licenses"][0]
    return license


@contextmanager
def console_signed_in(server: Server) -> Iterator[httpx.Client]:
    """A browser-like client signed in to the console with the owner key."""
    with httpx.Client(base_url=server.url, timeout=10) as client:
        token = form_token(client, "/console/signin")
        key = server.owner_key()
        signed_in = client.post("/console/signin", data={"api_key": key, "csrf": token})
        assert signed_in.status_code == 303, signed_in.text
        yield client


def form_token(client: httpx.Client, page: str) -> str:
    shown = client.get(page)
    assert shown.status_code == 200, shown.text
    found = re.search(r'name="csrf" value="([^"]+)"', shown.text)
    assert found is not None, shown.text
    return found.group(1)


# ---------------------------------------------------------------- input at every edge


@pytest.mark.parametrize("reason", ["chargeback\x00", "x" * 10 + "\x00" + "y"])
def test_a_console_form_holding_a_nul_character_is_refused_and_writes_nothing(
    server: Server, owner: httpx.Client, reason: str
) -> None:
    license = a_license(owner)
    serial = license["serial"]
    before = ledger_size(owner)
    with console_signed_in(server) as browser:
        token = form_token(browser, f"/console/licenses/{serial}")
        sent = browser.post(
            f"/console/licenses/{serial}/suspend", data={"reason": reason, "csrf": token}
        )
    assert sent.status_code == 400, sent.text
    assert "NUL" in sent.text
    assert ledger_size(owner) == before
    assert owner.get(f"/v1/licenses/{serial}").json()["status"] == "active"
    # The API refuses the same reason the same way.
    refused = owner.post(f"/v1/licenses/{serial}/suspend", json={"reason": reason})
    assert refused.status_code == 400, refused.text
    assert refused.json()["field"] == "reason"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tenure_executable(), *args],
        env=subprocess_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    "command", [("ledger", "verify"), ("audit", "verify"), ("state", "digest")]
)
def test_an_account_argument_that_is_not_utf8_is_one_line_not_a_traceback(
    tmp_path: Path, command: tuple[str, str]
) -> None:
    data_dir = tmp_path / "data"
    seed_data_dir(data_dir, events=5)
    done = run_cli(*command, "--data-dir", str(data_dir), "--account", NOT_UTF8)
    assert_one_line_error(done, "not valid UTF-8")


def test_erasing_a_customer_whose_id_is_not_utf8_writes_nothing_and_says_why(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    seed_data_dir(data_dir, events=5)
    before = run_cli("ledger", "verify", "--data-dir", str(data_dir))
    assert before.returncode == 0, before.stderr
    done = run_cli("customer", "erase", NOT_UTF8, "--reason", "asked", "--data-dir", str(data_dir))
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: "), done.stderr
    assert "not valid UTF-8" in last, done.stderr
    after = run_cli("ledger", "verify", "--data-dir", str(data_dir))
    assert after.stdout == before.stdout  # nothing appended
    audited = run_cli("audit", "verify", "--data-dir", str(data_dir))
    assert audited.returncode == 0, audited.stderr


# ---------------------------------------------------------------- the two-person rule


def made_key(client: httpx.Client, role: str, name: str) -> dict[str, Any]:
    made = client.post("/v1/apikeys", json={"role": role, "name": name})
    assert made.status_code == 201, made.text
    key: dict[str, Any] = made.json()
    return key


def test_after_the_readme_first_steps_a_stolen_persons_key_is_still_revoked(
    tmp_path: Path,
) -> None:
    """README "Start here": the bootstrap key makes three people's owner keys and is
    retired. Revoking one person's key takes the other two (one asks, one approves);
    with two people only, neither could ever be revoked."""
    data_dir, logs = tmp_path / "data", tmp_path / "logs"
    logs.mkdir()
    server = start_server(data_dir, logs)
    try:
        with server.client(server.owner_key()) as bootstrap:
            alice, bob, carol = (made_key(bootstrap, "owner", n) for n in ("a", "b", "c"))
        retired = tenure(server, "apikey", "retire-bootstrap", "--data-dir", str(data_dir))
        assert retired.returncode == 0, retired.stderr
        with (
            server.client(alice["key"]) as asker,
            server.client(bob["key"]) as thief,
            server.client(carol["key"]) as approver,
        ):
            asked = asker.delete(f"/v1/apikeys/{bob['id']}")
            assert asked.status_code == 202, asked.text
            approval = asked.json()["approval"]["approval"]
            vetoed = thief.post(f"/v1/approvals/{approval}/reject", json={"reason": "no"})
            assert vetoed.status_code == 403, vetoed.text
            done = approver.post(f"/v1/approvals/{approval}/approve", json={"reason": "stolen"})
            assert done.status_code == 200, done.text
            assert done.json()["approval"]["status"] == "executed"
            assert thief.get("/v1/apikeys").status_code == 401
    finally:
        server.stop()


# ---------------------------------------------------------------- forwarded headers

ROOT = Path(__file__).resolve().parents[2]
CODE = re.compile(r"```[^\n]*\n(.*?)```|`([^`]+)`", re.DOTALL)
COMMAND = re.compile(r"uvicorn (--|tenure\.)")


def uvicorn_commands(text: str) -> list[str]:
    """The uvicorn command lines the text shows (inline code and code blocks)."""
    commands = []
    for block, inline in CODE.findall(text):
        for line in block.splitlines() if block else [inline]:
            words = " ".join(line.split())
            if COMMAND.match(words) and "app_from_env" in words:
                commands.append(words)
    return commands


def test_every_documented_uvicorn_command_turns_its_forwarded_headers_off() -> None:
    """Uvicorn believes X-Forwarded-For from any loopback peer unless told not to: a
    command line the docs offer for running the app must say --no-proxy-headers, or
    a client on the host rotates its address past the failed-authentication limit
    (issue 14 item 5; docs/hardening.md)."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    shown = {page.name: uvicorn_commands(page.read_text(encoding="utf-8")) for page in pages}
    assert any(shown.values()), "the docs show how to run the app under uvicorn"
    unsafe = {
        name: [c for c in cmds if "--no-proxy-headers" not in c] for name, cmds in shown.items()
    }
    assert {name: cmds for name, cmds in unsafe.items() if cmds} == {}
