"""``tenure token issue|refresh|revoke|verify``: offline tokens (docs/offline.md).

``issue``, ``refresh`` and ``revoke`` talk to the service. ``verify`` is offline: it
checks a token with ``tenure.crypto.jws.verify`` against a key set read from a file,
or fetched once from a URL (its only network use). With ``--ledger-key`` it trusts
only the keys of a key set note signed by that ledger key (``--keyset`` file, or
``GET /v1/keyset`` fetched once), as ``LicenseClient(ledger_key=...)`` does. A
rejection prints one line, ``rejected: <reason>: <message>``, and exits 1.

The helpers here (reading a token or file argument, the trusted keys of ``--jwks`` or
``--ledger-key``, printing a rejection) are shared with ``tenure license-file``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn
from urllib.parse import quote, urljoin

import httpx
import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tenure.cli.client import (
    TIMEOUT,
    Endpoint,
    Remote,
    emit_answer,
    emit_json,
    endpoint_options,
    error_of,
    license_endpoint_options,
    service_trust,
    unreachable,
)
from tenure.cli.common import Output, OutputOption, err, out, value_text
from tenure.crypto import jws
from tenure.crypto.trust import TrustAnchor, TrustedKeys
from tenure.domain.activations import fingerprint_hash
from tenure.domain.timefmt import format_time
from tenure.errors import InvalidInput, TenureError, TokenRejected

TYP = "tenure-offline+jwt"
EXIT_REJECTED = 1

app = typer.Typer(
    help="Offline tokens: issue, refresh, revoke, and verify offline.\n\n"
    "A token is a signed JWS (typ tenure-offline+jwt) that lets an activated device "
    "decide locally. 'verify' needs no service: only the account's key set "
    "(GET /.well-known/jwks.json?account=A, saved to a file or fetched once).",
    no_args_is_help=True,
)

# ---------------------------------------------------------------- shared options

_JWKS = typer.Option(
    "--jwks",
    metavar="FILE_OR_URL",
    help="The account's key set: a JSON file, or an http(s) URL fetched once, e.g. "
    "<service>/.well-known/jwks.json?account=default.",
)
JwksOption = Annotated[str, _JWKS]
OptionalJwksOption = Annotated[str | None, _JWKS]
LedgerKeyOption = Annotated[
    str | None,
    typer.Option(
        "--ledger-key",
        metavar="KEY",
        help="The account's ledger verifier key ('tenure ledger key'): trust only the "
        "token keys that a key set note signed by it vouches for (instead of --jwks).",
    ),
]
KeysetOption = Annotated[
    str | None,
    typer.Option(
        "--keyset",
        metavar="FILE",
        help="With --ledger-key: the key set note, saved from GET /v1/keyset after the "
        "token or file was made (a note vouches for the key that signs only until its "
        "time plus the token lifetime); without it, the note is fetched once from the "
        "service (--url, --api-key).",
    ),
]
OutFileOption = Annotated[
    Path | None,
    typer.Option(
        "--out-file",
        "-o",
        metavar="FILE",
        help="Write the token to FILE instead of printing it.",
        dir_okay=False,
    ),
]
FormatOption = Annotated[
    Output, typer.Option("--output", help="Output format (json: the service's whole answer).")
]
TokenArgument = Annotated[
    str,
    typer.Argument(
        metavar="TOKEN_OR_FILE",
        help="The token itself, a file holding it, or - for standard input.",
    ),
]


# ---------------------------------------------------------------- shared helpers


def read_text_argument(value: str, what: str) -> str:
    """The text of ``value``: standard input for ``-``, a file's content when ``value``
    names an existing file, else ``value`` itself."""
    if value == "-":
        return sys.stdin.read()
    if os.path.isfile(value):  # never raises: a long token is simply not a file
        return read_file_argument(value, what)
    return value


def read_file_argument(value: str, what: str) -> str:
    """The content of file ``value`` (``-``: standard input); one-line error if unreadable."""
    if value == "-":
        return sys.stdin.read()
    try:
        return Path(value).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise InvalidInput(f"cannot read {what} {value}: {reason}", field=what) from None


def load_jwks(source: str) -> dict[str, Ed25519PublicKey]:
    """The verification keys of a key set from a file, or from an http(s) URL (one GET)."""
    if source.startswith(("http://", "https://")):
        trust = service_trust()
        try:
            response = httpx.get(source, timeout=TIMEOUT, follow_redirects=True, verify=trust)
        except (httpx.TransportError, httpx.InvalidURL) as exc:
            raise unreachable(f"the key set {source}", exc) from None
        if response.status_code >= 400:
            raise error_of(response)
        text = response.text
    else:
        text = read_file_argument(source, "jwks")
    try:
        return jws.keys_from_jwks(text)
    except InvalidInput as exc:
        where = f" ({exc.field})" if exc.field else ""
        raise InvalidInput(f"--jwks {source}: {exc.message}{where}", field="jwks") from None


def vouched_keys(ledger_key: str, keyset: str | None, remote: Remote | None) -> TrustedKeys:
    """The token keys a key set note signed by ``ledger_key`` vouches for: the note
    read from the file ``keyset``, else fetched once from ``remote``'s
    ``GET /v1/keyset``. A note the key did not sign is rejected (``untrusted_keyset``)."""
    if keyset is not None:
        document = read_file_argument(keyset, "keyset").encode("utf-8")
    elif remote is not None:
        document = remote.request("GET", "/v1/keyset").content
    else:
        raise InvalidInput("--ledger-key needs --keyset FILE or a service", field="keyset")
    try:
        return TrustAnchor(ledger_key).trust(document, None)
    except TokenRejected as exc:
        reject(exc)


def reject(exc: TenureError) -> NoReturn:
    """Print ``rejected: <reason>: <message>`` on one line (stderr) and exit 1."""
    reason = exc.reason if isinstance(exc, TokenRejected) else exc.code
    message = " ".join(str(exc.message).split())
    err.print(f"rejected: {reason}: {message}", highlight=False, markup=False, soft_wrap=True)
    raise typer.Exit(EXIT_REJECTED)


def show_value(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return value_text(value)


def show_time(seconds: Any) -> str:
    """``1764378000 (2025-11-29T01:00:00Z)`` for an integer timestamp."""
    if type(seconds) is not int:
        return show_value(seconds)
    try:
        return f"{seconds} ({format_time(datetime.fromtimestamp(seconds, UTC))})"
    except (OverflowError, OSError, ValueError):
        return str(seconds)


def iso_time(seconds: Any) -> str | None:
    if type(seconds) is not int:
        return None
    try:
        return format_time(datetime.fromtimestamp(seconds, UTC))
    except (OverflowError, OSError, ValueError):
        return None


def entitlement_text(entitlements: Any) -> str:
    if not isinstance(entitlements, dict) or not entitlements:
        return "-"
    return ", ".join(f"{name}={show_value(value)}" for name, value in sorted(entitlements.items()))


def write_out(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise InvalidInput(f"cannot write {path}: {reason}", field="out-file") from None


def _absolute(server: str, url: Any) -> str:
    """A URL of the answer resolved against ``server``: relative unless the server has
    ``TENURE_PUBLIC_URL``."""
    return urljoin(server + "/", url) if isinstance(url, str) and url else "-"


def deliver(
    text: str,
    answer: dict[str, Any],
    out_file: Path | None,
    output: Output,
    summary: Callable[[], list[str]],
) -> None:
    """An issued artifact (token, license file): ``text`` written to ``out_file`` if
    given; then the whole answer with JSON output, else ``text`` on stdout when there
    is no file, else the ``summary()`` lines."""
    if out_file is not None:
        write_out(out_file, text)
    if output is Output.json:
        emit_json(answer)
    elif out_file is None:
        sys.stdout.write(text)
    else:
        out.print("\n".join(summary()), highlight=False, markup=False)


def _print_minted(
    answer: dict[str, Any], out_file: Path | None, output: Output, server: str
) -> None:
    deliver(
        str(answer.get("token", "")) + "\n",
        answer,
        out_file,
        output,
        lambda: [
            f"wrote token {answer.get('jti')} to {out_file}",
            f"  expires  {show_value(answer.get('expires_at'))}",
            f"  jwks     {_absolute(server, answer.get('jwks_url'))}",
        ],
    )


# ---------------------------------------------------------------- commands


@app.command("issue")
@license_endpoint_options
def issue(
    license: Annotated[
        str, typer.Option("--license", metavar="SERIAL", help="License serial (TNR-…).")
    ],
    fingerprint: Annotated[
        str,
        typer.Option(
            "--fingerprint",
            metavar="FP",
            help="The device's fingerprint (it must hold an active activation).",
        ),
    ],
    out_file: OutFileOption = None,
    endpoint: Endpoint = Endpoint(),
    output: FormatOption = Output.text,
) -> None:
    """Mint an offline token for an activated device; print it (or write it with -o).

    The device must hold an activation ('tenure activation create'), else: 409 not_activated.

    The token lives for the plan's offline_token_ttl, never past the end of the license.

    Auth: an API key (owner, admin, issuer, support or agent) or --license-key.
    """
    remote = endpoint.remote()
    _, answer = remote.post("/v1/tokens", {"license": license, "fingerprint": fingerprint})
    _print_minted(answer, out_file, output, remote.url)


@app.command("refresh")
@license_endpoint_options
def refresh(
    token: TokenArgument,
    out_file: OutFileOption = None,
    endpoint: Endpoint = Endpoint(),
    output: FormatOption = Output.text,
) -> None:
    """Mint the next token for the same activation; print it (or write it with -o).

    An expired token is accepted if its signature is valid and the device holds its seat.

    -o may name the file the token was read from.

    Auth: an API key (owner, admin, issuer, support or agent) or --license-key.
    """
    text = read_text_argument(token, "token").strip()
    remote = endpoint.remote()
    _, answer = remote.post("/v1/tokens/refresh", {"token": text})
    _print_minted(answer, out_file, output, remote.url)


@app.command("revoke")
@endpoint_options
def revoke(
    serial: Annotated[str, typer.Argument(metavar="SERIAL", help="License serial (TNR-…).")],
    jti: Annotated[str, typer.Argument(metavar="JTI", help="The token's id (tok_…).")],
    reason: Annotated[
        str,
        typer.Option("--reason", help="Why (required; recorded in the ledger event)."),
    ],
    endpoint: Endpoint = Endpoint(),
    output: OutputOption = Output.text,
) -> None:
    """Put token JTI of license SERIAL on the signed revocation list.

    Clients drop it when they next pull GET /v1/revocations. Revoking it again changes nothing.

    Needs an owner, admin or issuer key.
    """
    path = f"/v1/licenses/{quote(serial, safe='')}/tokens/{quote(jti, safe='')}/revoke"
    _, answer = endpoint.remote().post(path, {"reason": reason})
    emit_answer(
        answer,
        output,
        lambda: [f"revoked token {answer.get('jti', jti)} of {answer.get('serial', serial)}"],
    )


@app.command("verify")
@endpoint_options
def verify(
    token: TokenArgument,
    jwks_source: OptionalJwksOption = None,
    ledger_key: LedgerKeyOption = None,
    keyset: KeysetOption = None,
    issuer: Annotated[
        str | None,
        typer.Option(
            "--issuer", metavar="I", help="Expected iss, e.g. tenure.localhost/ledger/default."
        ),
    ] = None,
    audience: Annotated[
        str | None, typer.Option("--audience", metavar="A", help="Expected aud (the product code).")
    ] = None,
    fingerprint: Annotated[
        str | None,
        typer.Option(
            "--fingerprint",
            metavar="FP",
            help="Check that the token is bound to this device (needs --serial).",
        ),
    ] = None,
    serial: Annotated[
        str | None, typer.Option("--serial", metavar="S", help="Expected sub (the license serial).")
    ] = None,
    endpoint: Endpoint = Endpoint(),
    output: OutputOption = Output.text,
) -> None:
    """Verify a token OFFLINE and print its claims.

    Checks the EdDSA signature (typ tenure-offline+jwt) against --jwks, or, with
    --ledger-key, against the keys a key set note signed by that ledger key vouches for.

    Checks nbf and exp with 60 s of clock-skew leeway; iss, aud, sub and the device if asked.

    Nothing named in the token is fetched; only an http(s) --jwks, or the key set note
    of --ledger-key without --keyset, is fetched, once.

    Exit status: 0 when valid; 1 with one line 'rejected: <reason>: <message>'.

    Reasons: malformed, bad_header, alg_not_allowed, typ_mismatch, unknown_kid, bad_signature.

    And: bad_claim, expired, not_yet_valid, wrong_issuer/audience/subject, wrong_fingerprint.

    With --ledger-key: untrusted_keyset, untrusted_key.
    """
    if fingerprint is not None and serial is None:
        raise InvalidInput("--fingerprint needs --serial (the hash binds both)", field="serial")
    trusted = trusted_keys(jwks_source, ledger_key, keyset, endpoint)
    text = read_text_argument(token, "token").strip()
    try:
        claims = trusted.verify(
            text, typ=TYP, now=time.time(), issuer=issuer, audience=audience, subject=serial
        )
        _check_binding(claims, trusted, serial, fingerprint)
    except TokenRejected as exc:
        reject(exc)
    emit_answer(claims, output, lambda: _claim_lines(claims))


def _claim_lines(claims: dict[str, Any]) -> list[str]:
    lines = [f"valid: token {show_value(claims.get('jti'))} of {show_value(claims.get('sub'))}"]
    for name, value in claims.items():
        shown = show_time(value) if name in ("iat", "nbf", "exp") else show_value(value)
        lines.append(f"  {name:<5} {shown}")
    return lines


def _check_binding(
    claims: dict[str, Any], trusted: TrustedKeys, serial: str | None, fingerprint: str | None
) -> None:
    """The token is of the key set's account (with --ledger-key) and of this device
    (with --serial and --fingerprint); ``TokenRejected`` otherwise."""
    check_account(claims, trusted)
    if serial is None or fingerprint is None:
        return
    if claims.get("fph") != fingerprint_hash(serial, fingerprint):
        raise TokenRejected("token is bound to another device", "wrong_fingerprint")


def check_account(claims: dict[str, Any], trusted: TrustedKeys) -> None:
    """With --ledger-key: what was verified is of the key set note's account (its
    ``iss`` ends in ``/<account>``); ``TokenRejected`` ``wrong_issuer`` otherwise."""
    vouched = trusted.vouched
    if vouched is not None and not str(claims.get("iss")).endswith("/" + vouched.account):
        raise TokenRejected(f"it is not of account {vouched.account}", "wrong_issuer")


def trusted_keys(
    jwks_source: str | None,
    ledger_key: str | None,
    keyset: str | None,
    endpoint: Endpoint,
) -> TrustedKeys:
    """The keys an offline verifier trusts: ``--jwks``, or those of the key set note
    ``--ledger-key`` signed (``--keyset`` file, else fetched once from the service).
    ``InvalidInput`` unless exactly one of ``--jwks`` and ``--ledger-key`` is given, or
    for ``--keyset`` without ``--ledger-key``."""
    if (jwks_source is None) == (ledger_key is None):
        raise InvalidInput("give either --jwks or --ledger-key", field="jwks")
    if ledger_key is None:
        if keyset is not None:
            raise InvalidInput(
                "--keyset needs --ledger-key (the key that signed it)", field="keyset"
            )
        source = str(jwks_source)
        return TrustedKeys(load_jwks(source), source.encode())
    remote = None if keyset is not None else endpoint.remote()
    return vouched_keys(ledger_key, keyset, remote)
