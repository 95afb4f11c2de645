"""Small things a new user hits against a running service (issue 15, items 5 and 6):
an erased customer printed as erased (never ``None``), a truncated JSON body answered
with where parsing stopped, and the CLI trusting a service with a self-signed
certificate (made with the README's own ``openssl`` command) through
``TENURE_CA_CERT`` or ``SSL_CERT_FILE``."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support.cli import subprocess_env, tenure_executable
from support.remote import assert_one_line_error, tenure
from support.server import HOST, Server, free_port, running_server

from .test_tls import _wait_https

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("first-hour")
    with running_server(root / "data", root) as running:
        yield running


def _problem(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem: dict[str, str] = response.json()
    assert problem["field"] == "body", problem
    return problem


# ---------------------------------------------------------------- erased customers


def test_an_erased_customer_is_shown_as_erased_not_none(server: Server) -> None:
    with server.client(server.owner_key()) as owner:
        made = owner.post("/v1/customers", json={"name": "Gone GmbH", "email": "x@gone.example"})
    assert made.status_code == 201, made.text
    customer = made.json()["id"]
    erase = ("customer", "erase", customer, "--reason", "asked", "--data-dir", server.data_dir)
    erased = tenure(server, *(str(a) for a in erase))
    assert erased.returncode == 0, erased.stderr
    shown = tenure(server, "customer", "show", customer)
    assert shown.returncode == 0, shown.stderr
    assert "None" not in shown.stdout, shown.stdout
    assert re.search(r"^\s+name\s+erased$", shown.stdout, re.M), shown.stdout
    assert re.search(r"^\s+email\s+erased$", shown.stdout, re.M), shown.stdout


# ---------------------------------------------------------------- examples/gate_feature.py


def test_the_example_that_cannot_activate_says_why_in_one_line(
    server: Server, tmp_path: Path
) -> None:
    with server.client(server.owner_key()) as owner:
        ledger_key = owner.get("/v1/ledger/key").text.strip()
    example = Path(__file__).resolve().parents[2] / "examples" / "gate_feature.py"
    serial, wrong_key = "TNR-AAAAA-BBBBB-CCCCC-DDDDD", "TNRK-AAAAAAAA-BBBBBBBB"
    done = subprocess.run(
        [sys.executable, str(example), server.url, wrong_key, serial, ledger_key],
        env=subprocess_env(HOME=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith("cannot activate this device: unauthenticated: "), line


# ---------------------------------------------------------------- bodies that are not JSON


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b'{"license": "TNR-X", "entitlement": ', "line 1 column 37 (char 36)"),
        (b'{\n  "license": "TNR-X",\n  "entitlement": tru\n}', "line 3 column 18 (char 41)"),
        (b'{"license": "TNR-X",}', "line 1 column 20 (char 19)"),
    ],
)
def test_a_body_that_is_not_json_is_a_400_saying_where_parsing_stopped(
    server: Server, body: bytes, where: str
) -> None:
    with server.client(server.owner_key()) as owner:
        answer = owner.post("/v1/check", content=body, headers={"Content-Type": "application/json"})
    detail = _problem(answer)["detail"]
    assert detail.startswith("the body is not JSON: "), detail
    assert where in detail, detail


def test_a_body_that_is_not_utf8_names_the_byte(server: Server) -> None:
    with server.client(server.owner_key()) as owner:
        answer = owner.post("/v1/check", content=b'{"license":\n \xff}')
    assert "not UTF-8: invalid byte at line 2 column 2 (byte 13)" in _problem(answer)["detail"]


# ---------------------------------------------------------------- a self-signed service


def _readme_openssl_command() -> str:
    """The README's command that makes a self-signed certificate (continuation lines
    joined), run as written."""
    text = README.read_text(encoding="utf-8")
    found = re.search(r"^openssl req .*?(?<!\\)\n", text, re.M | re.S)
    assert found, "the README no longer shows how to make a self-signed certificate"
    return found.group(0)


@pytest.fixture(scope="module")
def tls_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    """A service with the README's self-signed certificate; it and the certificate."""
    root = tmp_path_factory.mktemp("self-signed")
    made = subprocess.run(
        ["bash", "-c", _readme_openssl_command()], cwd=root, capture_output=True, timeout=60
    )
    assert made.returncode == 0, made.stderr
    port = free_port()
    command = [sys.executable, "-m", "tenure", "serve", "--data-dir", str(root / "data")]
    command += ["--host", HOST, "--port", str(port)]
    command += ["--tls-cert", str(root / "server.pem"), "--tls-key", str(root / "server.key")]
    out, err = root / "serve.out", root / "serve.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, env=subprocess_env()
        )
    running = Server(root / "data", port, process, out, err)
    try:
        _wait_https(running, root / "server.pem")
        yield running, root / "server.pem"
    finally:
        running.stop()


def _cli(running: Server, **env: str) -> subprocess.CompletedProcess[str]:
    """``tenure apikey list`` against the https service, with ``env``."""
    settings = {"TENURE_URL": f"https://localhost:{running.port}"}
    settings["TENURE_API_KEY"] = running.owner_key()
    return subprocess.run(
        [tenure_executable(), "apikey", "list"],
        env=subprocess_env(**settings, **env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_cli_refuses_an_untrusted_certificate_and_says_how_to_trust_it(
    tls_service: tuple[Server, Path],
) -> None:
    line = assert_one_line_error(_cli(tls_service[0]), "CERTIFICATE_VERIFY_FAILED")
    assert "TENURE_CA_CERT=" in line, line


@pytest.mark.parametrize("variable", ["TENURE_CA_CERT", "SSL_CERT_FILE"])
def test_the_cli_trusts_the_certificate_a_variable_names(
    tls_service: tuple[Server, Path], variable: str
) -> None:
    running, certificate = tls_service
    listed = _cli(running, **{variable: str(certificate)})
    assert listed.returncode == 0, listed.stderr
    assert "bootstrap owner" in listed.stdout


def test_a_tenure_ca_cert_that_cannot_be_read_is_one_line(
    tls_service: tuple[Server, Path], tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere.pem"
    assert_one_line_error(_cli(tls_service[0], TENURE_CA_CERT=str(missing)), str(missing))
