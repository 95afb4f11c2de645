"""Tenure's own verdict on each vector: the verifiers an application or auditor uses
(``tenure.crypto.jws``, ``tenure.sdk``, ``tenure.crypto.license_file``,
``tenure.crypto.keyset`` and ``tenure.ledger``), given only the vector's files and
inputs. Every refusal becomes the stable reason the manifest names."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tenure.crypto import jws, license_file
from tenure.errors import (
    InvalidLicenseFile,
    InvalidProof,
    MalformedNote,
    TokenRejected,
    UnverifiedNote,
)
from tenure.ledger.checkpoint import Checkpoint, open_checkpoint
from tenure.ledger.merkle import leaf_hash, verify_consistency, verify_inclusion
from tenure.ledger.note import NoteVerifier
from tenure.sdk import REVOCATIONS_TYP, TOKEN_TYP, fingerprint_hash
from tenure.sdk.tokens import revocation_of, verify_revocations, verify_token
from tenure.sdk.trust import TrustAnchor, TrustedKeys


@dataclass(frozen=True)
class Outcome:
    """A verifier's verdict: ``accept`` with what it yields, or ``reject`` with a reason."""

    verdict: str
    reason: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)

    def as_expected(self) -> dict[str, Any]:
        """In the manifest's ``expect`` shape."""
        reason = {} if self.reason is None else {"reason": self.reason}
        return {"verdict": self.verdict, **reason, **self.facts}


class Refused(Exception):
    """A rule the harness checks itself was broken."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@contextmanager
def refusals() -> Iterator[None]:
    """Turn Tenure's typed errors into ``Refused`` with their stable reason."""
    try:
        yield
    except TokenRejected as rejected:
        raise Refused(rejected.reason) from rejected
    except (InvalidLicenseFile, InvalidProof, MalformedNote, UnverifiedNote) as error:
        raise Refused(error.code) from error


class VectorFiles:
    """The files of docs/vectors/ and its manifest."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.manifest: dict[str, Any] = json.loads((root / "manifest.json").read_text("utf-8"))
        self.now: int = self.manifest["now"]

    def raw(self, path: str) -> bytes:
        return (self.root / path).read_bytes()

    def text(self, path: str) -> str:
        return self.raw(path).decode("utf-8")

    def json(self, path: str) -> Any:
        return json.loads(self.raw(path))


Checker = Callable[[dict[str, Any], VectorFiles], dict[str, Any]]


def outcome(check: Checker, vector: dict[str, Any], files: VectorFiles) -> Outcome:
    try:
        with refusals():
            facts = check(vector, files)
    except Refused as refused:
        return Outcome("reject", refused.reason)
    if "revoked_by" in facts:
        return Outcome("reject", "revoked", {"revoked_by": facts["revoked_by"]})
    return Outcome("accept", None, facts)


# ------------------------------------------------------------------ JOSE


def trusted_keys(inputs: dict[str, Any], files: VectorFiles) -> TrustedKeys:
    """The JWKS as it is (trust on first use), or the key set the ledger key vouches for."""
    if "keyset" in inputs:
        anchor = TrustAnchor(files.text(inputs["ledger_key"]))
        return anchor.trust(files.raw(inputs["keyset"]), inputs["account"])
    document = files.raw(inputs["jwks"])
    return TrustedKeys(jws.keys_from_jwks(document), document)


def token_by_the_rules(vector: dict[str, Any], files: VectorFiles) -> dict[str, Any]:
    """docs/offline.md's rules, through ``jws.verify`` and the trust anchor's key life."""
    inputs = vector["inputs"]
    trusted = trusted_keys(inputs, files)
    claims = trusted.verify(
        files.text(vector["file"]),
        typ=TOKEN_TYP,
        now=files.now,
        issuer=inputs["issuer"],
        audience=inputs["audience"],
        subject=inputs["subject"],
    )
    if claims["fph"] != inputs["fingerprint_hash"]:
        raise Refused("wrong_fingerprint")
    if "revocations" in inputs:
        listing = list_by_the_rules(
            files.text(inputs["revocations"]), inputs, inputs["revocations_since"], files, trusted
        )
        what = revoked_by_the_rules(listing, claims)
        if what is not None:
            return {"revoked_by": what}
    return {"claims": claims}


def revoked_by_the_rules(listing: dict[str, Any], claims: dict[str, Any]) -> str | None:
    """What in a revocation list ends a token: its license's latest entry, when that
    revokes or suspends; else its activation; else its jti."""
    mine = sorted(
        (entry["seq"], entry["status"])
        for entry in listing["licenses"]
        if entry["serial"] == claims["sub"]
    )
    if mine and mine[-1][1] in ("revoked", "suspended"):
        return f"license_{mine[-1][1]}"
    if any(entry["activation"] == claims["act"] for entry in listing["activations"]):
        return "activation"
    if any(entry["jti"] == claims["jti"] for entry in listing["tokens"]):
        return "token"
    return None


def token_by_the_sdk(vector: dict[str, Any], files: VectorFiles) -> dict[str, Any]:
    """What ``LicenseClient`` does with a token and its revocation list."""
    inputs = vector["inputs"]
    trusted = trusted_keys(inputs, files)
    text = files.text(vector["file"])
    grant = verify_token(
        text,
        trusted,
        serial=inputs["subject"],
        device_hash=fingerprint_hash(inputs["subject"], inputs["fingerprint"]),
        account=inputs["account"],
        now=files.now,
    )
    if "revocations" in inputs:
        listing = verify_revocations(
            files.text(inputs["revocations"]),
            trusted,
            since=inputs["revocations_since"],
            now=files.now,
            account=inputs["account"],
            serial=inputs["subject"],
        )
        what = revocation_of(listing, grant, licenses_only=False)
        if what is not None:
            return {"revoked_by": what}
    return {"claims": json.loads(jws.b64url_decode(text.split(".")[1]))}


def list_by_the_rules(
    text: str, inputs: dict[str, Any], since: int, files: VectorFiles, trusted: TrustedKeys
) -> dict[str, Any]:
    """The claims of a revocation list addressed to this reader and asked ``since``."""
    claims = trusted.verify(
        text,
        typ=REVOCATIONS_TYP,
        now=files.now,
        issuer=inputs["issuer"],
        audience=inputs["account"],
        subject=inputs["subject"],
    )
    if claims.get("since") != since:
        raise Refused("bad_claim")
    return claims


def revocations_by_the_rules(vector: dict[str, Any], files: VectorFiles) -> dict[str, Any]:
    inputs = vector["inputs"]
    trusted = trusted_keys(inputs, files)
    text = files.text(vector["file"])
    return {"claims": list_by_the_rules(text, inputs, inputs["since"], files, trusted)}


def revocations_by_the_sdk(vector: dict[str, Any], files: VectorFiles) -> dict[str, Any]:
    inputs = vector["inputs"]
    text = files.text(vector["file"])
    verify_revocations(
        text,
        trusted_keys(inputs, files),
        since=inputs["since"],
        now=files.now,
        account=inputs["account"],
        serial=inputs["subject"],
    )
    return {"claims": json.loads(jws.b64url_decode(text.split(".")[1]))}


def license_file_read(vector: dict[str, Any], files: VectorFiles) -> dict[str, Any]:
    """``tenure.crypto.license_file.read``, as an air-gapped application calls it:
    with the JWKS, or with the keys and the note the ledger key vouches for."""
    inputs = vector["inputs"]
    trusted = trusted_keys(inputs, files)
    claims = license_file.read(
        files.text(vector["file"]),
        trusted.keys,
        vouched=trusted.vouched,
        now=files.now,
        fingerprint_hash=fingerprint_hash(inputs["serial"], inputs["fingerprint"]),
        license_key=inputs.get("license_key"),
        serial=inputs["serial"],
    )
    return {"claims": claims}


def keyset_trusted(vector: dict[str, Any], files: VectorFiles) -> dict[str, Any]:
    """The SDK's trust anchor, pinned to the ledger key, opening a key set note."""
    inputs = vector["inputs"]
    anchor = TrustAnchor(files.text(inputs["ledger_key"]))
    vouched = anchor.trust(files.raw(vector["file"]), inputs["account"]).vouched
    assert vouched is not None
    keys = [
        {"kid": k.kid, "x": k.x, "valid_from": k.valid_from, "valid_until": k.valid_until}
        for k in vouched.keys
    ]
    return {
        "account": vouched.account,
        "time": vouched.time,
        "token_lifetime": vouched.token_lifetime,
        "keys": keys,
    }


# ------------------------------------------------------------------ ledger


def opened(files: VectorFiles, note_path: str, key_path: str) -> Checkpoint:
    verifier = NoteVerifier.from_key_string(files.text(key_path).strip())
    return open_checkpoint(files.text(note_path), [verifier])


def checkpoint_opened(vector: dict[str, Any], files: VectorFiles) -> dict[str, Any]:
    head = opened(files, vector["file"], vector["inputs"]["ledger_key"])
    return {"origin": head.origin, "size": head.size, "root": head.root_b64}


def hashes(encoded: list[str]) -> list[bytes]:
    return [base64.b64decode(item, validate=True) for item in encoded]


def inclusion_verified(vector: dict[str, Any], files: VectorFiles) -> dict[str, Any]:
    """The leaf of the events file is in the checkpoint's tree, by the proof."""
    inputs = vector["inputs"]
    head = opened(files, inputs["checkpoint"], inputs["ledger_key"])
    proof = files.json(vector["file"])
    if proof["size"] != head.size:
        raise Refused(InvalidProof.code)
    events = {event["seq"]: event["leaf_b64"] for event in files.json(inputs["events"])["events"]}
    leaf = base64.b64decode(events[proof["index"]], validate=True)
    digest = leaf_hash(leaf)
    if digest != base64.b64decode(proof["leaf_hash_b64"], validate=True):
        raise Refused(InvalidProof.code)
    verify_inclusion(digest, proof["index"], head.size, hashes(proof["proof"]), head.root)
    return {}


def consistency_verified(vector: dict[str, Any], files: VectorFiles) -> dict[str, Any]:
    """The old checkpoint's tree is a prefix of the new one's, by the proof."""
    inputs = vector["inputs"]
    old = opened(files, inputs["old_checkpoint"], inputs["ledger_key"])
    new = opened(files, inputs["checkpoint"], inputs["ledger_key"])
    proof = files.json(vector["file"])
    if (proof["from"], proof["to"]) != (old.size, new.size) or old.origin != new.origin:
        raise Refused(InvalidProof.code)
    verify_consistency(old.size, new.size, old.root, new.root, hashes(proof["proof"]))
    return {}


CHECKERS: dict[str, dict[str, Checker]] = {
    "offline-token": {"rules": token_by_the_rules, "sdk": token_by_the_sdk},
    "revocation-list": {"rules": revocations_by_the_rules, "sdk": revocations_by_the_sdk},
    "license-file": {"license_file.read": license_file_read},
    "keyset-note": {"sdk trust anchor": keyset_trusted},
    "checkpoint": {"open_checkpoint": checkpoint_opened},
    "inclusion": {"verify_inclusion": inclusion_verified},
    "consistency": {"verify_consistency": consistency_verified},
}


def verdicts(vector: dict[str, Any], files: VectorFiles) -> dict[str, dict[str, Any]]:
    """Each of Tenure's verifiers of the vector's kind → its outcome, as ``expect``."""
    return {
        name: outcome(check, vector, files).as_expected()
        for name, check in CHECKERS[vector["kind"]].items()
    }
