"""The offline commands as an operator and an application run them: ``tenure
activation``, ``token``, ``keys`` and ``license-file`` as real subprocesses against a
real server, and the offline verifiers (``token verify``, ``license-file verify``)
deciding from a key set alone."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.api import apply_example_catalog, issue_license, people
from support.remote import assert_one_line_error, ok_json, tenure
from support.server import Server, seeded_server
from tenure.crypto import jws

ISSUER = "tenure.localhost/ledger/default"
BEGIN = "-----BEGIN TENURE LICENSE FILE-----"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with seeded_server(tmp_path_factory, "cli-offline") as running:
        yield running


@pytest.fixture(scope="module")
def owner(server: Server) -> Iterator[httpx.Client]:
    with server.client(server.owner_key()) as client:
        apply_example_catalog(client)
        yield client


def new_license(owner: httpx.Client, plan: str = "studio-pro") -> dict[str, Any]:
    return issue_license(owner, plan)


def jwks_url(server: Server) -> str:
    return f"{server.url}/.well-known/jwks.json?account=default"


def save_jwks(server: Server, path: Path) -> Path:
    response = httpx.get(jwks_url(server))
    assert response.status_code == 200, response.text
    path.write_text(response.text, encoding="utf-8")
    return path


def activate(server: Server, license: dict[str, Any], device: str) -> dict[str, Any]:
    created: dict[str, Any] = ok_json(
        tenure(
            server,
            "activation",
            "create",
            license["serial"],
            "--fingerprint",
            device,
            "--license-key",
            license["key"],
            "-o",
            "json",
        )
    )
    return created


def issue_token(server: Server, license: dict[str, Any], device: str) -> dict[str, Any]:
    activate(server, license, device)
    minted: dict[str, Any] = ok_json(
        tenure(
            server,
            "token",
            "issue",
            "--license",
            license["serial"],
            "--fingerprint",
            device,
            "--license-key",
            license["key"],
            "--output",
            "json",
        )
    )
    return minted


# ---------------------------------------------------------------- help

HELP_COMMANDS = [
    ["activation"],
    ["activation", "create"],
    ["activation", "list"],
    ["activation", "heartbeat"],
    ["activation", "deactivate"],
    ["token"],
    ["token", "issue"],
    ["token", "refresh"],
    ["token", "revoke"],
    ["token", "verify"],
    ["keys"],
    ["keys", "list"],
    ["keys", "rotate"],
    ["approval"],
    ["approval", "list"],
    ["approval", "show"],
    ["approval", "approve"],
    ["approval", "reject"],
    ["license-file"],
    ["license-file", "issue"],
    ["license-file", "verify"],
]


@pytest.mark.parametrize("command", HELP_COMMANDS, ids=" ".join)
def test_every_command_has_help(server: Server, command: list[str]) -> None:
    done = tenure(server, *command, "--help")
    assert done.returncode == 0, done.stderr
    assert "Usage:" in done.stdout
    assert done.stderr == ""


# ---------------------------------------------------------------- activations


def test_activation_lifecycle_with_a_license_key(server: Server, owner: httpx.Client) -> None:
    license = new_license(owner)
    serial, key = license["serial"], license["key"]
    as_app = ("--license-key", key)
    created = ok_json(
        tenure(
            server,
            "activation",
            "create",
            serial,
            "--fingerprint",
            "laptop-1",
            *as_app,
            "-o",
            "json",
            key="",
        )
    )
    assert created["id"].startswith("act_")
    assert (created["serial"], created["mode"], created["status"]) == (serial, "floating", "active")
    assert created["lease_expires_at"] is not None
    # The same device again: the same activation, said in words.
    again = tenure(server, "activation", "create", serial, "--fingerprint", "laptop-1", *as_app)
    assert again.returncode == 0, again.stderr
    assert f"already active: {created['id']}" in again.stdout
    assert "lease until" in again.stdout

    listed = ok_json(tenure(server, "activation", "list", serial, *as_app, "-o", "json", key=""))
    assert [a["id"] for a in listed["activations"]] == [created["id"]]
    table = tenure(server, "activation", "list", serial, *as_app, key="")
    assert table.returncode == 0, table.stderr
    assert created["id"] in table.stdout
    assert "1 activation(s), 1 holding a seat" in table.stdout

    renewed = ok_json(
        tenure(server, "activation", "heartbeat", created["id"], *as_app, "-o", "json", key="")
    )
    assert (renewed["id"], renewed["status"]) == (created["id"], "active")

    gone = ok_json(
        tenure(server, "activation", "deactivate", created["id"], *as_app, "-o", "json", key="")
    )
    assert (gone["id"], gone["status"]) == (created["id"], "deactivated")
    after = ok_json(tenure(server, "activation", "list", serial, *as_app, "-o", "json"))
    assert [a["status"] for a in after["activations"]] == ["deactivated"]
    # A heartbeat for a deactivated activation is a one-line 409.
    stale = tenure(server, "activation", "heartbeat", created["id"], *as_app)
    assert_one_line_error(stale, "409")


def test_activation_with_an_api_key(server: Server, owner: httpx.Client) -> None:
    serial = new_license(owner)["serial"]
    done = tenure(server, "activation", "create", serial, "--fingerprint", "desk-1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("activated: act_")
    for field in ("mode", "status", "lease until"):
        assert field in done.stdout
    activation = done.stdout.split()[1]
    heartbeat = tenure(server, "activation", "heartbeat", activation)
    assert heartbeat.returncode == 0, heartbeat.stderr
    assert f"renewed: {activation}" in heartbeat.stdout
    deactivated = tenure(server, "activation", "deactivate", activation)
    assert deactivated.returncode == 0, deactivated.stderr
    assert "deactivated" in deactivated.stdout


def test_a_full_license_is_a_one_line_seat_limit_error(server: Server, owner: httpx.Client) -> None:
    license = new_license(owner, plan="studio-basic")  # seats: 1
    activate(server, license, "only-seat")
    full = tenure(
        server,
        "activation",
        "create",
        license["serial"],
        "--fingerprint",
        "second-machine",
        "--license-key",
        license["key"],
    )
    assert_one_line_error(full, "409", "seat_limit")


def test_a_license_key_acts_on_its_own_license_only(server: Server, owner: httpx.Client) -> None:
    mine, other = new_license(owner), new_license(owner)
    done = tenure(
        server,
        "activation",
        "list",
        other["serial"],
        "--license-key",
        mine["key"],
    )
    assert_one_line_error(done, "403")


# ---------------------------------------------------------------- tokens


def test_an_issued_token_verifies_offline_from_the_jwks_url(
    server: Server, owner: httpx.Client
) -> None:
    license = new_license(owner)
    serial = license["serial"]
    activate(server, license, "pc-1")
    issued = tenure(
        server,
        "token",
        "issue",
        "--license",
        serial,
        "--fingerprint",
        "pc-1",
        "--license-key",
        license["key"],
    )
    assert issued.returncode == 0, issued.stderr
    token = issued.stdout.strip()
    assert token.count(".") == 2
    assert "\n" not in token

    claims = ok_json(
        tenure(
            server,
            "token",
            "verify",
            token,
            "--jwks",
            jwks_url(server),
            "--issuer",
            ISSUER,
            "--audience",
            "studio",
            "--serial",
            serial,
            "--fingerprint",
            "pc-1",
            "-o",
            "json",
        )
    )
    assert (claims["sub"], claims["aud"], claims["iss"]) == (serial, "studio", ISSUER)
    assert claims["ent"]["feature:cloud-sync"] is True
    assert claims["jti"].startswith("tok_")

    text = tenure(server, "token", "verify", token, "--jwks", jwks_url(server))
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith(f"valid: token {claims['jti']} of {serial}")
    assert "exp" in text.stdout
    assert "ent" in text.stdout

    other_device = tenure(
        server,
        "token",
        "verify",
        token,
        "--jwks",
        jwks_url(server),
        "--serial",
        serial,
        "--fingerprint",
        "pc-2",
    )
    assert_one_line_error(other_device, "rejected: wrong_fingerprint")
    wrong_audience = tenure(
        server, "token", "verify", token, "--jwks", jwks_url(server), "--audience", "render-farm"
    )
    assert_one_line_error(wrong_audience, "rejected: wrong_audience")


def test_a_tampered_token_is_rejected_bad_signature(
    server: Server, owner: httpx.Client, tmp_path: Path
) -> None:
    minted = issue_token(server, new_license(owner), "pc-1")
    header, payload, signature = minted["token"].split(".")
    claims = json.loads(jws.b64url_decode(payload))
    claims["ent"]["seats"] = 500
    forged = ".".join([header, jws.b64url_encode(json.dumps(claims).encode()), signature])
    jwks_file = save_jwks(server, tmp_path / "jwks.json")
    done = tenure(server, "token", "verify", forged, "--jwks", str(jwks_file))
    assert done.returncode == 1
    line = assert_one_line_error(done, "rejected: bad_signature")
    assert line.startswith("rejected: bad_signature: ")
    assert done.stdout == ""
    garbage = tenure(server, "token", "verify", "not-a-token", "--jwks", str(jwks_file))
    assert_one_line_error(garbage, "rejected: malformed")


def test_token_files_refresh_and_revoke(
    server: Server, owner: httpx.Client, tmp_path: Path
) -> None:
    license = new_license(owner)
    serial = license["serial"]
    activate(server, license, "pc-9")
    token_file = tmp_path / "token.jwt"
    written = tenure(
        server,
        "token",
        "issue",
        "--license",
        serial,
        "--fingerprint",
        "pc-9",
        "-o",
        str(token_file),
    )
    assert written.returncode == 0, written.stderr
    assert f"to {token_file}" in written.stdout
    first = token_file.read_text().strip()
    verified = tenure(server, "token", "verify", str(token_file), "--jwks", jwks_url(server))
    assert verified.returncode == 0, verified.stderr

    refreshed = ok_json(
        tenure(
            server,
            "token",
            "refresh",
            str(token_file),
            "--license-key",
            license["key"],
            "--output",
            "json",
        )
    )
    assert refreshed["token"] != first
    jti = refreshed["jti"]

    revoked = ok_json(
        tenure(server, "token", "revoke", serial, jti, "--reason", "stolen laptop", "-o", "json")
    )
    assert (revoked["serial"], revoked["jti"], revoked["revoked"]) == (serial, jti, True)
    text = tenure(server, "token", "revoke", serial, jti, "--reason", "again")
    assert text.returncode == 0, text.stderr
    assert f"revoked token {jti} of {serial}" in text.stdout
    # It is on the signed revocation list.
    answer = owner.get("/v1/revocations", params={"since": 0})
    listed = jws.verify(
        answer.text,
        jws.keys_from_jwks(httpx.get(jwks_url(server)).json()),
        typ="tenure-revocations+jwt",
        now=time.time(),
    )
    assert jti in [t["jti"] for t in listed["tokens"]]
    # A token for a device without an activation is a one-line 409.
    never = tenure(server, "token", "issue", "--license", serial, "--fingerprint", "ghost")
    assert_one_line_error(never, "409", "not_activated")


# ---------------------------------------------------------------- keys


def test_keys_list_and_rotate(server: Server, owner: httpx.Client) -> None:
    before = ok_json(tenure(server, "keys", "list", "-o", "json"))["keys"]
    assert before
    assert all(k["kid"] for k in before)
    table = tenure(server, "keys", "list")
    assert table.returncode == 0, table.stderr
    for header in ("kid", "created", "retired", "published until"):
        assert header in table.stdout
    assert before[0]["kid"] in table.stdout

    issuer_key = ok_json(
        tenure(server, "apikey", "create", "--role", "issuer", "--name", "ci", "-o", "json")
    )["key"]
    refused = tenure(server, "keys", "rotate", key=issuer_key)
    assert_one_line_error(refused, "403")
    listed = tenure(server, "keys", "list", key=issuer_key)
    assert_one_line_error(listed, "403")

    first, admin_key = people(owner)  # the two-person rule: one asks, another approves
    asked = tenure(server, "keys", "rotate", key=first)
    assert asked.returncode == 0, asked.stderr
    assert asked.stdout.startswith("approval requested: apr_"), asked.stdout
    approval = asked.stdout.split()[2]
    shown = tenure(server, "approval", "list", "--status", "pending", key=admin_key)
    assert approval in shown.stdout, shown.stdout + shown.stderr
    rotated = ok_json(
        tenure(
            server,
            "approval",
            "approve",
            approval,
            "--reason",
            "yearly",
            "-o",
            "json",
            key=admin_key,
        )
    )
    assert rotated["approval"]["status"] == "executed"
    new_kid = rotated["result"]["kid"]
    history = ok_json(tenure(server, "approval", "show", approval, "-o", "json"))["history"]
    assert [h["reason"] for h in history][1:] == ["yearly", "yearly"]
    after = ok_json(tenure(server, "keys", "list", "-o", "json"))["keys"]
    by_kid = {k["kid"]: k for k in after}
    assert by_kid[new_kid]["retired_at"] is None
    old = by_kid[before[0]["kid"]]
    assert old["retired_at"] is not None
    assert old["publish_until"] is not None
    published = {k["kid"] for k in httpx.get(jwks_url(server)).json()["keys"]}
    assert {new_kid, old["kid"]} <= published


# ---------------------------------------------------------------- license files


@pytest.mark.parametrize("encrypt", [False, True], ids=["plain", "encrypted"])
def test_a_license_file_verifies_offline(
    server: Server, owner: httpx.Client, tmp_path: Path, encrypt: bool
) -> None:
    license = new_license(owner)
    serial, key = license["serial"], license["key"]
    flags = ["--encrypt"] if encrypt else []
    to_stdout = tenure(
        server, "license-file", "issue", serial, "--fingerprint", "vault-1", "--expires", "P30D"
    )
    assert to_stdout.returncode == 0, to_stdout.stderr
    assert to_stdout.stdout.startswith(BEGIN)
    file = tmp_path / "studio.lic"
    written = tenure(
        server,
        "license-file",
        "issue",
        serial,
        "--fingerprint",
        "vault-1",
        "--expires",
        "P30D",
        *flags,
        "-o",
        str(file),
    )
    assert written.returncode == 0, written.stderr
    assert f"to {file}" in written.stdout
    assert file.read_text().startswith(BEGIN)
    jwks_file = save_jwks(server, tmp_path / "jwks.json")
    offline = ("--jwks", str(jwks_file))
    with_key = ("--license-key", key) if encrypt else ()

    good = ok_json(
        tenure(
            server,
            "license-file",
            "verify",
            str(file),
            *offline,
            "--fingerprint",
            "vault-1",
            *with_key,
            "-o",
            "json",
        )
    )
    assert (good["serial"], good["product"]) == (serial, "studio")
    assert good["entitlements"]["seats"] == 5
    assert good["expires_at"].endswith("Z")
    text = tenure(
        server, "license-file", "verify", str(file), *offline, "--fingerprint", "vault-1", *with_key
    )
    assert text.returncode == 0, text.stderr
    for field in (serial, "studio", "feature:export-pdf=true", "expires"):
        assert field in text.stdout
    with_serial = tenure(
        server,
        "license-file",
        "verify",
        str(file),
        *offline,
        "--fingerprint",
        "vault-1",
        "--serial",
        serial,
        *with_key,
    )
    assert with_serial.returncode == 0, with_serial.stderr

    wrong_device = tenure(
        server,
        "license-file",
        "verify",
        str(file),
        *offline,
        "--fingerprint",
        "vault-2",
        *with_key,
    )
    assert_one_line_error(wrong_device, "rejected: wrong_fingerprint")
    if encrypt:
        no_key = tenure(
            server, "license-file", "verify", str(file), *offline, "--fingerprint", "vault-1"
        )
        assert_one_line_error(no_key, "rejected: invalid_license_file", "license key")
        other_key = new_license(owner)["key"]
        bad_key = tenure(
            server,
            "license-file",
            "verify",
            str(file),
            *offline,
            "--fingerprint",
            "vault-1",
            "--license-key",
            other_key,
        )
        assert_one_line_error(bad_key, "rejected: invalid_license_file", "wrong license key")
    else:
        other_serial = new_license(owner)["serial"]
        wrong_serial = tenure(
            server,
            "license-file",
            "verify",
            str(file),
            *offline,
            "--fingerprint",
            "vault-1",
            "--serial",
            other_serial,
        )
        assert_one_line_error(wrong_serial, "rejected: wrong_subject")


def test_license_file_verify_errors_are_one_line(server: Server, tmp_path: Path) -> None:
    missing = tenure(
        server,
        "license-file",
        "verify",
        str(tmp_path / "missing.lic"),
        "--jwks",
        str(save_jwks(server, tmp_path / "jwks.json")),
        "--fingerprint",
        "x",
    )
    assert_one_line_error(missing, "missing.lic")
    not_armor = tmp_path / "junk.lic"
    not_armor.write_text("hello\n")
    junk = tenure(
        server,
        "license-file",
        "verify",
        str(not_armor),
        "--jwks",
        str(tmp_path / "jwks.json"),
        "--fingerprint",
        "x",
    )
    assert_one_line_error(junk, "rejected: invalid_license_file")
    no_jwks = tenure(
        server,
        "license-file",
        "verify",
        str(not_armor),
        "--jwks",
        str(tmp_path / "nope.json"),
        "--fingerprint",
        "x",
    )
    assert_one_line_error(no_jwks, "nope.json")
