"""The first hour (issue 15, item 8): from a fresh clone, the README's commands, run
as written, reach an allowed check, and print what the README says they print.

The test clones the repository at HEAD (untracked files cannot help it), links the
project's ``.venv`` into the clone (installing again would take minutes), and runs
the ``console`` blocks of README sections in bash, one command at a time, in the
clone, against a real ``tenure serve`` of the clone's data dir. The README is the
clone's, so the test breaks when the README drifts from what the commands do.

It substitutes only what the README tells a user to substitute, and what the test
cannot do on this machine:

- the port: ``8080`` becomes a free port ("replace var and 8080"), also as
  ``TENURE_URL`` where the README relies on the CLI's default URL;
- ``TNRK-…``: the license key the service printed last ("the key of that answer");
- ``npm install … jose``: a link to Debian's node-jose (the tests have no network);
- ``make serve`` starts ``.venv/bin/tenure serve --data-dir var`` (what it runs) and
  ``make test`` is not run (it runs this test);
- a comment-only command is an instruction: "stop the service", "start the service
  again".

Each command's output must match what the README shows after it: ``…`` (or
``...``) matches anything, a date matches any date, and white space and the box
characters of the CLI's tables are ignored (the README wraps long JSON and draws
tables without boxes). A command shown without output only has to succeed. The exit
status must be 0, or the ``exit N`` the command's comment names.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from support.cli import subprocess_env
from support.required import missing_tool
from support.server import free_port

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(sys.executable).parent.parent
DEBIAN_JOSE = Path("/usr/share/nodejs/jose")
STARTUP_TIMEOUT = 30.0
COMMAND_TIMEOUT = 60.0
BOX_CHARACTERS = re.compile("[\u2500-\u257f]")
WILDCARD = re.compile(r"…|\.\.\.")
DATE = re.compile(r"\d{4}-\d\d-\d\d")
LICENSE_KEY = re.compile(r"TNRK-[A-Z0-9]+(?:-[A-Z0-9]+)+")


# ---------------------------------------------------------------- reading the README


@dataclass
class Command:
    """One ``$`` command of a console block and the output the README shows for it."""

    text: str
    shown: list[str] = field(default_factory=list)

    @property
    def exit_status(self) -> int:
        named = re.search(r"#.*\bexit (\d+)", self.text)
        return int(named.group(1)) if named else 0

    @property
    def instruction(self) -> str | None:
        """The text of a comment-only command (an instruction to the reader)."""
        return self.text[1:].strip() if self.text.startswith("#") else None


def sections(readme: str) -> dict[str, str]:
    """The README's level-2 and level-3 sections by title."""
    parts = re.split(r"^#{2,3} (.+)$", readme, flags=re.M)
    return {title.strip(): body for title, body in zip(parts[1::2], parts[2::2], strict=True)}


def console_blocks(section: str) -> list[list[Command]]:
    """The section's ``console`` blocks, each a list of commands."""
    blocks = []
    for block in re.findall(r"^```console\n(.*?)^```", section, re.M | re.S):
        commands: list[Command] = []
        continued = False
        for line in block.splitlines():
            if continued:
                commands[-1].text += "\n" + line
            elif line.startswith("$ "):
                commands.append(Command(line[2:]))
            else:
                commands[-1].shown.append(line)
            continued = line.endswith("\\")
        blocks.append(commands)
    return blocks


def matches(shown: list[str], printed: str) -> bool:
    """Whether ``printed`` is what the README ``shown`` (see the module's docstring)."""
    pattern = []
    for literal in WILDCARD.split("".join("".join(shown).split())):
        pieces = [re.escape(piece) for piece in DATE.split(literal)]
        pattern.append(r"\d{4}-\d\d-\d\d".join(pieces))
    actual = "".join(BOX_CHARACTERS.sub("", printed).split())
    return re.fullmatch(".*?".join(pattern), actual, re.S) is not None


# ---------------------------------------------------------------- running it

ASSIGNED = ("KEY", "LICENSE_KEY", "TOKEN", "TENURE_URL", "TENURE_API_KEY", "TENURE_LEDGER_KEY")
"""The shell variables README commands set and later ones read."""


@dataclass
class Clone:
    """A fresh clone with a server of its data dir and a bash that keeps variables."""

    root: Path
    port: int
    home: Path
    printed: list[str] = field(default_factory=list)
    server: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        path = f"{self.root / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
        url = f"http://127.0.0.1:{self.port}"
        return subprocess_env(PATH=path, HOME=str(self.home), TENURE_URL=url)

    def start_server(self) -> str:
        """``make serve``: the service on ``var``; its banner once it is healthy."""
        command = [str(self.root / ".venv/bin/tenure"), "serve", "--data-dir", "var"]
        command += ["--host", "127.0.0.1", "--port", str(self.port)]
        banner = self.root / f"serve-{time.monotonic_ns()}.out"
        with banner.open("wb") as out, (self.root / "serve.err").open("ab") as err:
            self.server = subprocess.Popen(
                command, cwd=self.root, env=self.env, stdout=out, stderr=err
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            assert self.server.poll() is None, (self.root / "serve.err").read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz").status_code == 200:
                    return banner.read_text()
            except httpx.TransportError:
                time.sleep(0.1)
        pytest.fail(f"tenure serve was not healthy\n{(self.root / 'serve.err').read_text()}")

    def stop_server(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.send_signal(signal.SIGTERM)
            self.server.wait(timeout=15)

    def run(self, command: Command) -> str:
        """Run one README command in bash, with the variables earlier ones set."""
        text = command.text.replace("8080", str(self.port))
        if "TNRK-…" in text:
            keys = LICENSE_KEY.findall("\n".join(self.printed))
            assert keys, f"no license key printed before {command.text!r}"
            text = text.replace("TNRK-…", keys[-1])
        script = f"""[ -f .readme-state ] && . ./.readme-state
{{
{text}
}}
status=$?
declare -p {" ".join(ASSIGNED)} > .readme-state 2>/dev/null
exit $status
"""
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-c", script],
            cwd=self.root,
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        printed = done.stdout + done.stderr
        self.printed.append(printed)
        assert done.returncode == command.exit_status, f"$ {text}\n{printed}"
        return printed


def perform(clone: Clone, commands: list[Command]) -> None:
    """Run ``commands`` as a reader would, checking each output against the README."""
    for command in commands:
        if command.text == "make test":
            continue  # the whole suite, this test included
        if command.text == "make serve":
            printed = clone.start_server()
        elif command.instruction is not None:
            do_instruction(clone, command.instruction)
            continue
        elif command.text.startswith("npm install"):
            link_debian_jose(clone.root)
            continue
        else:
            printed = clone.run(command)
        shown = [line.replace("8080", str(clone.port)) for line in command.shown]
        if shown and not matches(shown, printed):
            readme = "\n".join(shown)
            pytest.fail(f"$ {command.text}\nprinted:\n{printed}\nthe README shows:\n{readme}")


def do_instruction(clone: Clone, instruction: str) -> None:
    if instruction.startswith("stop the service"):
        clone.stop_server()
    elif instruction.startswith("start the service again"):
        clone.start_server()
    else:
        pytest.fail(f"the test does not know how to do what the README says: {instruction}")


def link_debian_jose(root: Path) -> None:
    """``npm install jose`` without a network: Debian's node-jose, the same library."""
    if shutil.which("node") is None or not DEBIAN_JOSE.is_dir():
        missing_tool("the README's Node example needs node and Debian's node-jose")
    (root / "node_modules").mkdir(exist_ok=True)
    (root / "node_modules" / "jose").symlink_to(DEBIAN_JOSE)


@pytest.fixture
def clone(tmp_path: Path) -> Iterator[Clone]:
    """A clone of HEAD with the project's virtualenv linked in; its server stopped after."""
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    root = tmp_path / "tenure"
    for git in (["clone", "-q", str(ROOT), str(root)], ["-C", str(root), "checkout", "-q", head]):
        subprocess.run(["git", *git], capture_output=True, check=True, timeout=60)
    (root / ".venv").symlink_to(VENV)
    (tmp_path / "home").mkdir()
    made = Clone(root, free_port(), tmp_path / "home")
    try:
        yield made
    finally:
        made.stop_server()


def readme_blocks(clone: Clone) -> dict[str, list[list[Command]]]:
    found = sections((clone.root / "README.md").read_text(encoding="utf-8"))
    return {title: console_blocks(body) for title, body in found.items()}


def start_here(blocks: dict[str, list[list[Command]]]) -> list[Command]:
    return [command for block in blocks["Start here"] for command in block]


# ---------------------------------------------------------------- the flows


def test_the_readme_with_curl_reaches_an_allowed_check_then_imports_and_works_offline(
    clone: Clone,
) -> None:
    """Start here, the catalog, licenses and checks with curl, an import, the SDK
    online and offline, and a token verified by Node's jose."""
    blocks = readme_blocks(clone)
    licenses = blocks["Licenses and checks"][0]
    assert licenses[0].text.startswith("curl"), "the first block of Licenses is curl's"
    perform(clone, start_here(blocks) + blocks["Catalog"][0] + licenses)
    assert any('"allowed":true' in printed for printed in clone.printed)
    perform(clone, blocks["Importing from another licensing system"][0])
    for block in blocks["Offline operation"]:
        perform(clone, block)


def test_the_readme_with_the_cli_reaches_an_allowed_check(clone: Clone) -> None:
    """Start here, then licenses and checks with the ``tenure`` command line."""
    blocks = readme_blocks(clone)
    commands = blocks["Licenses and checks"][1]
    assert commands[0].text.startswith("export TENURE_URL"), "the second block is the CLI's"
    perform(clone, start_here(blocks) + commands)
    assert any(printed.startswith("ALLOWED") for printed in clone.printed)


def test_the_readme_shows_the_example_as_it_is() -> None:
    """Every line of the README's Python excerpt is a line of examples/gate_feature.py,
    in the same order."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    offline = sections(readme)["Offline operation"]
    [excerpt] = re.findall(r"^```python\n(.*?)^```", offline, re.M | re.S)
    example = (ROOT / "examples" / "gate_feature.py").read_text(encoding="utf-8").splitlines()
    at = 0
    for line in filter(str.strip, excerpt.splitlines()):
        assert line in example[at:], f"not in examples/gate_feature.py (in order): {line}"
        at = example.index(line, at) + 1
