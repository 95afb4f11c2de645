"""Offline tokens over real HTTP: minted for activated devices only, verifiable from
the JWKS alone (by our verifier, by joserfc and by Node's `jose`), refreshable,
revocable through the signed revocation list, and surviving key rotation."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from support.api import apply_example_catalog, issue_license, people
from support.node import node_verify
from support.server import Server, seeded_server
from tenure.crypto import jws, license_file
from tenure.domain.activations import fingerprint_hash
from tenure.errors import InvalidLicenseFile, TokenRejected

TYP = "tenure-offline+jwt"
ISSUER = "tenure.localhost/ledger/default"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with seeded_server(tmp_path_factory, "tokens") as running:
        yield running


@pytest.fixture(scope="module")
def owner(server: Server) -> Iterator[httpx.Client]:
    with server.client(server.owner_key()) as client:
        apply_example_catalog(client)
        yield client


def new_license(owner: httpx.Client) -> dict[str, Any]:
    return issue_license(owner)


def app_client(server: Server, key: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"License {key}"})


def activated_token(server: Server, owner: httpx.Client, device: str = "pc-1") -> dict[str, Any]:
    license = new_license(owner)
    with app_client(server, license["key"]) as app:
        activated = app.post(
            f"/v1/licenses/{license['serial']}/activations", json={"fingerprint": device}
        )
        assert activated.status_code == 201, activated.text
        minted = app.post("/v1/tokens", json={"license": license["serial"], "fingerprint": device})
    assert minted.status_code == 201, minted.text
    return {**minted.json(), "license": license, "device": device}


def jwks_of(server: Server) -> dict[str, Any]:
    response = httpx.get(f"{server.url}/.well-known/jwks.json", params={"account": "default"})
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def test_a_minted_token_carries_the_contract_claims(server: Server, owner: httpx.Client) -> None:
    minted = activated_token(server, owner)
    serial = minted["license"]["serial"]
    keys = jws.keys_from_jwks(jwks_of(server))
    claims = jws.verify(
        minted["token"],
        keys,
        typ=TYP,
        now=time.time(),
        issuer=ISSUER,
        audience="studio",
        subject=serial,
    )
    assert claims["fph"] == fingerprint_hash(serial, "pc-1")
    assert claims["ent"]["feature:cloud-sync"] is True
    assert claims["core"] == ["feature:export-pdf"]
    assert claims["grace"] == 14 * 86400
    assert claims["exp"] - claims["iat"] == 24 * 3600  # the plan's offline_token_ttl
    assert claims["jti"] == minted["jti"]
    assert claims["act"].startswith("act_")
    assert set(claims["ckpt"]) == {"size", "root"}
    assert claims["lic"]["status"] == "active"
    assert minted["jwks_url"].endswith("/.well-known/jwks.json?account=default")
    # The mint is in the audit log, with the token id; the fingerprint is not.
    entries = owner.get("/v1/audit", params={"action": "mint_token", "target": serial}).json()
    [entry] = entries["entries"]
    assert entry["detail"]["jti"] == minted["jti"]
    assert "pc-1" not in json.dumps(entry)


def test_joserfc_verifies_a_token_from_the_jwks_alone(server: Server, owner: httpx.Client) -> None:
    minted = activated_token(server, owner)
    key_set = KeySet.import_key_set(jwks_of(server))
    with pytest.warns(Warning, match="EdDSA"):  # deprecated in favour of RFC 9864 names
        decoded = jwt.decode(minted["token"], key_set, algorithms=["EdDSA"])
    assert decoded.header["typ"] == TYP
    assert decoded.claims["sub"] == minted["license"]["serial"]


def test_nodes_jose_verifies_a_token_from_the_jwks_alone(
    server: Server, owner: httpx.Client, tmp_path: Path
) -> None:
    minted = activated_token(server, owner)
    jwks = jwks_of(server)
    done = node_verify(jwks, minted["token"], ISSUER, "studio", TYP, tmp_path)
    assert done.returncode == 0, done.stderr
    verified = json.loads(done.stdout)
    assert verified["claims"]["jti"] == minted["jti"]
    assert verified["header"] == {"alg": "EdDSA", "typ": TYP, "kid": verified["header"]["kid"]}
    # And Node refuses the same token with one claim changed.
    header, payload, signature = minted["token"].split(".")
    claims = json.loads(jws.b64url_decode(payload))
    claims["ent"]["seats"] = 500
    forged = ".".join([header, jws.b64url_encode(json.dumps(claims).encode()), signature])
    refused = node_verify(jwks, forged, ISSUER, "studio", TYP, tmp_path)
    assert refused.returncode == 1
    assert "signature" in refused.stderr.lower()


def test_no_token_without_an_activation(server: Server, owner: httpx.Client) -> None:
    license = new_license(owner)
    with app_client(server, license["key"]) as app:
        refused = app.post(
            "/v1/tokens", json={"license": license["serial"], "fingerprint": "never-activated"}
        )
    assert refused.status_code == 409
    assert refused.json()["type"].endswith("/not_activated")


def test_refresh_mints_the_next_token_and_refuses_foreign_ones(
    server: Server, owner: httpx.Client
) -> None:
    minted = activated_token(server, owner)
    with app_client(server, minted["license"]["key"]) as app:
        refreshed = app.post("/v1/tokens/refresh", json={"token": minted["token"]})
        foreign_key = jws.jwk_thumbprint(_other_key().public_key())
        forged = jws.sign(
            {"iss": ISSUER, "sub": minted["license"]["serial"], "exp": int(time.time()) + 60},
            _other_key(),
            foreign_key,
            TYP,
        )
        refused = app.post("/v1/tokens/refresh", json={"token": forged})
    assert refreshed.status_code == 201, refreshed.text
    assert refreshed.json()["jti"] != minted["jti"]
    assert refused.status_code == 400
    assert refused.json()["type"].endswith("/token_rejected")


def test_revocations_reach_the_signed_list(server: Server, owner: httpx.Client) -> None:
    minted = activated_token(server, owner)
    serial, key = minted["license"]["serial"], minted["license"]["key"]
    revoked = owner.post(
        f"/v1/licenses/{serial}/tokens/{minted['jti']}/revoke", json={"reason": "stolen laptop"}
    )
    assert revoked.status_code == 200, revoked.text
    owner.post(f"/v1/licenses/{serial}/suspend", json={"reason": "unpaid"})
    with app_client(server, key) as app:
        answer = app.get("/v1/revocations", params={"since": 0})
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/jose"
    claims = jws.verify(
        answer.text,
        jws.keys_from_jwks(jwks_of(server)),
        typ="tenure-revocations+jwt",
        now=time.time(),
        issuer=ISSUER,
    )
    assert [t["jti"] for t in claims["tokens"]] == [minted["jti"]]
    assert [(x["serial"], x["status"]) for x in claims["licenses"]] == [(serial, "suspended")]
    # Incremental: asking from `until` on gives nothing new.
    with app_client(server, key) as app:
        later = app.get("/v1/revocations", params={"since": claims["until"]})
    again = jws.verify(
        later.text,
        jws.keys_from_jwks(jwks_of(server)),
        typ="tenure-revocations+jwt",
        now=time.time(),
    )
    assert (again["tokens"], again["licenses"]) == ([], [])


def test_rotation_keeps_old_tokens_verifiable_and_signs_with_the_new_key(
    server: Server, owner: httpx.Client
) -> None:
    before = activated_token(server, owner)
    old_kid = json.loads(jws.b64url_decode(before["token"].split(".")[0]))["kid"]
    first, second = people(owner)  # the two-person rule: one asks, another approves
    with server.client(first) as person:
        asked = person.post("/v1/keys/rotate")
    assert asked.status_code == 202, asked.text
    approval = asked.json()["approval"]["approval"]
    with server.client(second) as admin:
        rotated = admin.post(f"/v1/approvals/{approval}/approve", json={"reason": "yearly"})
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["approval"]["status"] == "executed"
    new_kid = rotated.json()["result"]["kid"]
    assert new_kid != old_kid
    after = activated_token(server, owner, device="pc-2")
    assert json.loads(jws.b64url_decode(after["token"].split(".")[0]))["kid"] == new_kid
    keys = jws.keys_from_jwks(jwks_of(server))
    assert {old_kid, new_kid} <= set(keys)
    for token in (before["token"], after["token"]):
        jws.verify(token, keys, typ=TYP, now=time.time(), issuer=ISSUER)
    listing = owner.get("/v1/keys").json()["keys"]
    old = next(k for k in listing if k["kid"] == old_kid)
    assert old["retired_at"] is not None
    assert old["publish_until"] > old["retired_at"]


def test_a_token_of_another_key_set_is_rejected(server: Server, owner: httpx.Client) -> None:
    other = _other_key()
    kid = jws.jwk_thumbprint(other.public_key())
    forged = jws.sign(
        {"iss": ISSUER, "sub": "TNR-AAAAA-AAAAA-AAAAA-AAAAA", "exp": int(time.time()) + 60},
        other,
        kid,
        TYP,
    )
    with pytest.raises(TokenRejected) as caught:
        jws.verify(forged, jws.keys_from_jwks(jwks_of(server)), typ=TYP, now=time.time())
    assert caught.value.reason == "unknown_kid"


_OTHER: list[Any] = []


def _other_key() -> Any:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    if not _OTHER:
        _OTHER.append(Ed25519PrivateKey.generate())
    return _OTHER[0]


@pytest.mark.parametrize("encrypt", [False, True])
def test_a_license_file_binds_a_device_and_verifies_offline(
    server: Server, owner: httpx.Client, encrypt: bool
) -> None:
    license = new_license(owner)
    serial = license["serial"]
    issued = owner.post(
        f"/v1/licenses/{serial}/license-file",
        json={"fingerprint": "air-gapped-1", "expires": "P30D", "encrypt": encrypt},
    )
    assert issued.status_code == 201, issued.text
    body = issued.json()
    text = body["license_file"]
    assert text.startswith("-----BEGIN TENURE LICENSE FILE-----")
    keys = jws.keys_from_jwks(jwks_of(server))
    fph = fingerprint_hash(serial, "air-gapped-1")
    claims = license_file.read(
        text,
        keys,
        now=time.time(),
        fingerprint_hash=fph,
        license_key=license["key"] if encrypt else None,
        serial=serial,
    )
    assert claims["sub"] == serial
    assert claims["exp"] - claims["iat"] == 30 * 86400
    # The device took a node-locked seat, so the file cannot be multiplied at will.
    activations = owner.get(f"/v1/licenses/{serial}/activations").json()["activations"]
    assert [(a["id"], a["mode"]) for a in activations] == [(body["activation"], "node-locked")]
    if encrypt:
        with pytest.raises(InvalidLicenseFile):
            license_file.read(text, keys, now=time.time(), fingerprint_hash=fph)
    with pytest.raises(TokenRejected) as wrong_device:
        license_file.read(
            text,
            keys,
            now=time.time(),
            fingerprint_hash=fingerprint_hash(serial, "another-machine"),
            license_key=license["key"] if encrypt else None,
            serial=serial,
        )
    assert wrong_device.value.reason == "wrong_fingerprint"
