"""``tenure license-file issue|verify``: signed license files for air-gapped machines.

``issue`` asks the service (docs/offline.md, "License files"); ``verify`` is offline,
with ``tenure.crypto.license_file.read`` and 300 s of clock-skew leeway, trusting the
keys of ``--jwks`` or, as ``tenure token verify`` does, those of a key set note signed
by ``--ledger-key``. A rejection prints one line, ``rejected: <reason>: <message>``,
and exits 1.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer

from tenure.cli.client import Endpoint, emit_answer, endpoint_options
from tenure.cli.common import Output, OutputOption
from tenure.cli.tokens import (
    FormatOption,
    KeysetOption,
    LedgerKeyOption,
    OptionalJwksOption,
    check_account,
    deliver,
    entitlement_text,
    iso_time,
    read_file_argument,
    reject,
    show_value,
    trusted_keys,
)
from tenure.crypto import jws, license_file
from tenure.domain.activations import fingerprint_hash
from tenure.errors import InvalidInput, InvalidLicenseFile, TokenRejected

app = typer.Typer(
    help="License files for air-gapped machines: issue, and verify offline.\n\n"
    "A license file is an armored, signed JWS (typ tenure-license-file+jwt) bound to "
    "one device's fingerprint, optionally encrypted so that only the holder of the "
    "license key can read it.",
    no_args_is_help=True,
)

Fingerprint = Annotated[
    str,
    typer.Option(
        "--fingerprint", metavar="FP", help="The air-gapped device's fingerprint (1-256 chars)."
    ),
]


@app.command("issue")
@endpoint_options
def issue(
    serial: Annotated[str, typer.Argument(metavar="SERIAL", help="License serial (TNR-…).")],
    fingerprint: Fingerprint,
    expires: Annotated[
        str | None,
        typer.Option(
            "--expires",
            metavar="DURATION",
            help="The file's lifetime, ISO 8601 (e.g. P365D); default: the rest of the "
            "license's term (a year for a perpetual license).",
        ),
    ] = None,
    encrypt: Annotated[
        bool,
        typer.Option(
            "--encrypt",
            help="Encrypt the body (JWE, A256GCM) with a key derived from the license key.",
        ),
    ] = False,
    out_file: Annotated[
        Path | None,
        typer.Option(
            "--out-file",
            "-o",
            metavar="FILE",
            help="Write the license file to FILE (default: standard output).",
            dir_okay=False,
        ),
    ] = None,
    endpoint: Endpoint = Endpoint(),
    output: FormatOption = Output.text,
) -> None:
    """Issue a license file that binds license SERIAL to one device.

    The device takes a node-locked seat (a full license fails with 409 seat_limit).

    Needs an owner, admin or issuer key.
    """
    body: dict[str, Any] = {"fingerprint": fingerprint, "encrypt": encrypt}
    if expires is not None:
        body["expires"] = expires
    path = f"/v1/licenses/{quote(serial, safe='')}/license-file"
    _, answer = endpoint.remote().post(path, body)
    deliver(
        str(answer.get("license_file", "")),
        answer,
        out_file,
        output,
        lambda: [
            f"wrote license file {answer.get('jti')} to {out_file}",
            f"  activation  {show_value(answer.get('activation'))}",
            f"  expires     {show_value(answer.get('expires_at'))}",
            f"  encrypted   {show_value(answer.get('encrypted'))}",
        ],
    )


def _claimed_serial(text: str) -> str | None:
    """The serial a license file claims, unverified (``read`` verifies it): the JWE
    header's ``kid`` of an encrypted file, else the JWS's ``sub``."""
    try:
        body = license_file.dearmor(text)
        parts = body.split(".")
        raw = jws.b64url_decode(parts[0] if len(parts) == 5 else parts[1])
        member = "kid" if len(parts) == 5 else "sub"
        value = json.loads(raw).get(member)
    except (InvalidLicenseFile, InvalidInput, IndexError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


@app.command("verify")
@endpoint_options
def verify(
    file: Annotated[
        str, typer.Argument(metavar="FILE", help="The license file (- for standard input).")
    ],
    fingerprint: Fingerprint,
    jwks_source: OptionalJwksOption = None,
    ledger_key: LedgerKeyOption = None,
    keyset: KeysetOption = None,
    license_key: Annotated[
        str | None,
        typer.Option(
            "--license-key", metavar="K", help="The license key: needed to open an encrypted file."
        ),
    ] = None,
    serial: Annotated[
        str | None,
        typer.Option(
            "--serial",
            metavar="S",
            help="Expected license serial (default: the one the file names).",
        ),
    ] = None,
    endpoint: Endpoint = Endpoint(),
    output: OutputOption = Output.text,
) -> None:
    """Verify a license file OFFLINE; print its serial, product, entitlements and expiry.

    Opens the armor (and the encryption, with --license-key) and checks the EdDSA
    signature against --jwks, or, with --ledger-key, against the keys a key set note
    signed by that ledger key vouches for: then the file must have been signed in
    its key's life in that note (keep the note fetched when the file was issued).

    Checks the validity period (300 s of clock-skew leeway), the serial and the device.

    Nothing is fetched but an http(s) --jwks, or the note of --ledger-key without
    --keyset, once.

    Exit status: 0 when valid; 1 with one line 'rejected: <reason>: <message>'.

    Reasons: e.g. bad_signature, expired, wrong_subject, wrong_fingerprint.

    With --ledger-key: untrusted_keyset, untrusted_key, wrong_issuer.

    invalid_license_file: bad armor, or a missing or wrong license key.
    """
    trusted = trusted_keys(jwks_source, ledger_key, keyset, endpoint)
    text = read_file_argument(file, "file")
    expected = serial if serial is not None else _claimed_serial(text)
    try:
        claims = license_file.read(
            text,
            trusted.keys,
            now=time.time(),
            fingerprint_hash=fingerprint_hash(expected or "", fingerprint),
            license_key=license_key,
            serial=expected,
            vouched=trusted.vouched,
        )
        check_account(claims, trusted)
    except (TokenRejected, InvalidLicenseFile) as exc:
        reject(exc)
    summary = {
        "serial": claims.get("sub"),
        "product": claims.get("aud"),
        "entitlements": claims.get("ent"),
        "core": claims.get("core"),
        "expires_at": iso_time(claims.get("exp")),
        "issued_at": iso_time(claims.get("iat")),
        "activation": claims.get("act"),
        "jti": claims.get("jti"),
        "claims": claims,
    }
    emit_answer(summary, output, lambda: _summary_lines(summary, claims))


def _summary_lines(summary: dict[str, Any], claims: dict[str, Any]) -> list[str]:
    return [
        f"valid license file {show_value(claims.get('jti'))}",
        f"  serial        {show_value(summary['serial'])}",
        f"  product       {show_value(summary['product'])}",
        f"  entitlements  {entitlement_text(summary['entitlements'])}",
        f"  core          {', '.join(map(str, summary['core'] or [])) or '-'}",
        f"  expires       {show_value(summary['expires_at'])}",
        f"  issued        {show_value(summary['issued_at'])}",
        f"  activation    {show_value(summary['activation'])}",
        f"  issuer        {show_value(claims.get('iss'))}",
    ]
