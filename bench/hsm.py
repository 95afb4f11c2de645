"""Benchmark 10 (issue 7, key store): Ed25519 signing through a PKCS#11 token.

A fresh SoftHSM2 token in a temporary directory, keys generated on it as the
``pkcs11`` key store makes them (non-extractable), driven through python-pkcs11:

1. Raw Ed25519 signatures/s on the token (``TokenKey.sign``, ``CKM_EDDSA``) vs
   in-process signatures with ``cryptography`` over the same message.
2. Checkpoint signing (``sign_checkpoint`` with a ``NoteSigner`` over the token's
   ledger key) vs the raw token signature rate it is bounded by.
3. Offline token mint (``jws.sign`` of realistic claims with the token key) vs the
   raw token signature rate.

Figures run in interleaved rounds; the in-process checkpoint and mint rates are
printed as notes. Needs Debian's ``softhsm2`` and python-pkcs11 (the ``hsm`` extra).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.common import Options, Result, Timer, temp_dir
from tenure.crypto import jws
from tenure.ledger.checkpoint import Checkpoint, sign_checkpoint
from tenure.ledger.note import NoteSigner
from tenure.service.tokens import TOKEN_TYP

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
ORIGIN = "tenure.localhost/ledger/bench"
PIN = "31415926"


def missing() -> str | None:
    """Why the benchmark cannot run here, or None."""
    if shutil.which("softhsm2-util") is None or not Path(MODULE).exists():
        return "SoftHSM2 not installed (apt-get install -y softhsm2)"
    try:
        import pkcs11  # noqa: F401
    except ImportError:
        return "python-pkcs11 not installed (pip install -e '.[hsm]')"
    return None


def _claims(now: int) -> dict[str, Any]:
    """Claims shaped like ``Tokens._claims`` (a plan with a handful of entitlements)."""
    return {
        "iss": "tenure.localhost/ledger/default",
        "sub": "LIC-7Q2M-9XKD",
        "aud": "studio",
        "iat": now,
        "nbf": now,
        "exp": now + 86400,
        "jti": "tok_" + os.urandom(12).hex(),
        "act": "act_" + os.urandom(8).hex(),
        "fph": os.urandom(32).hex(),
        "ent": {"feature:export-pdf": True, "feature:cloud-sync": True, "seats": 5},
        "core": ["feature:export-pdf"],
        "grace": 7 * 86400,
        "lic": {"status": "active", "expires_at": "2027-01-01T00:00:00.000000Z"},
        "ckpt": {"size": 123456, "root": "q3c2n7pJq9m0bm1lYm1mYm1mYm1mYm1mYm1mYm1mYm0="},
    }


def _token(where: Path) -> Any:
    """A fresh token under ``where``; returns the PKCS#11 key store logged in to it."""
    from tenure.crypto import pkcs11

    tokens = where / "tokens"
    tokens.mkdir()
    conf = where / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    init = ["softhsm2-util", "--init-token", "--free", "--label", "bench"]
    subprocess.run([*init, "--so-pin", "2718", "--pin", PIN], check=True, capture_output=True)
    pkcs11.reset(MODULE)
    return pkcs11.Pkcs11KeyStore.open(MODULE, "bench", PIN)


def run(opts: Options) -> list[Result]:
    reason = missing()
    if reason is not None:
        print(f"  skipped: {reason}")
        return []
    with temp_dir("hsm", opts.tmp_root) as where:
        store = _token(where)
        return _measure(opts, store)


def _measure(opts: Options, store: Any) -> list[Result]:
    on_token: NoteSigner = store.ledger_signer(ORIGIN)
    kid, token_key = store.create("bench")
    in_process = Ed25519PrivateKey.generate()
    local_signer = NoteSigner(ORIGIN, in_process)
    local_kid = jws.jwk_thumbprint(in_process.public_key())
    claims = _claims(int(time.time()))
    message = jws.sign(claims, in_process, local_kid, TOKEN_TYP).rsplit(".", 1)[0].encode()
    checkpoint = Checkpoint(ORIGIN, 1_234_567, os.urandom(32))
    funcs: dict[str, Callable[[], object]] = {
        "token sign": lambda: token_key.sign(message),
        "in-process sign": lambda: in_process.sign(message),
        "token checkpoint": lambda: sign_checkpoint(checkpoint, [on_token]),
        "in-process checkpoint": lambda: sign_checkpoint(checkpoint, [local_signer]),
        "token mint": lambda: jws.sign(claims, token_key, kid, TOKEN_TYP),
        "in-process mint": lambda: jws.sign(claims, in_process, local_kid, TOKEN_TYP),
    }
    per_round = 300 if opts.quick else 1_000
    rounds = 3 if opts.quick else 5
    seconds = dict.fromkeys(funcs, 0.0)
    for _ in range(rounds):
        for name, func in funcs.items():
            n = per_round * (10 if name.startswith("in-process") else 1)
            timer = Timer()
            for _ in range(n):
                func()
            seconds[name] += timer.elapsed()
    rate = {
        name: per_round * rounds * (10 if name.startswith("in-process") else 1) / seconds[name]
        for name in funcs
    }
    print(
        f"  SoftHSM2 ({MODULE}) via python-pkcs11, one session behind a lock; "
        f"{rounds} interleaved rounds of {per_round:,} token operations "
        f"(in-process: {per_round * 10:,}); message {len(message)} bytes"
    )
    found = [
        Result(
            "Ed25519 sign on the token (SoftHSM2, CKM_EDDSA)", rate["token sign"], "sigs/s",
            rate["in-process sign"], "in-process Ed25519 sign (cryptography)", "sigs/s",
            "no goal; the cost of keeping the key on the token", None,
        ),
        Result(
            "checkpoint signing through the token", rate["token checkpoint"], "checkpoints/s",
            rate["token sign"], "raw token sign", "sigs/s", "goal >= 0.80",
            rate["token checkpoint"] / rate["token sign"] >= 0.8,
        ),
        Result(
            "token mint (jws.sign) through the token", rate["token mint"], "tokens/s",
            rate["token sign"], "raw token sign", "sigs/s", "goal >= 0.70",
            rate["token mint"] / rate["token sign"] >= 0.7,
        ),
    ]  # fmt: skip
    found[1].notes.append(
        f"in-process: {rate['in-process checkpoint']:,.0f} checkpoints/s; the writer signs "
        "one checkpoint per account per interval (default 1 s), far below either"
    )
    found[2].notes.append(
        f"in-process: {rate['in-process mint']:,.0f} tokens/s; through the token "
        f"{1e6 / rate['token mint']:.0f} us per token vs {1e6 / rate['in-process mint']:.0f} us"
    )
    for result in found:
        print(result.line())
        for note in result.notes:
            print(f"    {note}")
    return found
