"""``tenure serve --tls-cert/--tls-key/--tls-client-ca``: HTTPS, HSTS and mutual TLS
for agent keys, against a real server with certificates made by the test."""

from __future__ import annotations

import ipaddress
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from support.cli import subprocess_env
from support.server import HOST, REQUEST_TIMEOUT, STARTUP_TIMEOUT, Server, free_port

Key = ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class Issued:
    cert: Path
    key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(directory: Path, stem: str, cert: x509.Certificate, key: Key) -> Issued:
    cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Issued(cert_path, key_path)


def make_ca(directory: Path, stem: str) -> tuple[x509.Certificate, Key, Issued]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(f"{stem} CA"))
        .issuer_name(_name(f"{stem} CA"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key, _write(directory, stem + "-ca", cert, key)


def issue(
    directory: Path, stem: str, ca: tuple[x509.Certificate, Key, Issued], *, server: bool
) -> Issued:
    ca_cert, ca_key, _ = ca
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(stem))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if server:
        san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))])
        builder = builder.add_extension(san, critical=False)
    return _write(directory, stem, builder.sign(ca_key, hashes.SHA256()), key)


@dataclass(frozen=True)
class Pki:
    ca: Path
    server: Issued
    agent: Issued
    stranger: Issued


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca = make_ca(directory, "tenure")
    other = make_ca(directory, "other")
    return Pki(
        ca[2].cert,
        issue(directory, "server", ca, server=True),
        issue(directory, "agent-1", ca, server=False),
        issue(directory, "stranger", other, server=False),
    )


def _wait_https(server: Server, ca: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    with httpx.Client(base_url=https(server), verify=ssl_context(ca), timeout=1.0) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                pytest.fail(f"tenure serve exited\n{server.logs()}")
            try:
                if client.get("/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    server.stop()
    pytest.fail(f"tenure serve (TLS) was not healthy\n{server.logs()}")


def https(server: Server) -> str:
    return f"https://{HOST}:{server.port}"


def ssl_context(ca: Path, client: Issued | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    if client is not None:
        context.load_cert_chain(client.cert, client.key)
    return context


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("tls-data")
    log_dir = tmp_path_factory.mktemp("tls-logs")
    port = free_port()
    command = [sys.executable, "-m", "tenure", "serve", "--data-dir", str(data_dir)]
    command += ["--host", HOST, "--port", str(port)]
    command += ["--tls-cert", str(pki.server.cert), "--tls-key", str(pki.server.key)]
    out_path, err_path = log_dir / "serve.out", log_dir / "serve.err"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            # The client CA through the environment, the rest as options: both paths.
            env=subprocess_env(TENURE_TLS_CLIENT_CA=str(pki.ca)),
        )
    server = Server(data_dir, port, process, out_path, err_path)
    try:
        _wait_https(server, pki.ca)
        yield server
    finally:
        server.stop()


def client(server: Server, pki: Pki, key: str, cert: Issued | None = None) -> httpx.Client:
    return httpx.Client(
        base_url=https(server),
        verify=ssl_context(pki.ca, cert),
        headers={"Authorization": f"Bearer {key}"},
        timeout=REQUEST_TIMEOUT,
    )


@pytest.fixture(scope="module")
def agent_key(tls_server: Server, pki: Pki) -> str:
    with client(tls_server, pki, tls_server.owner_key()) as owner:
        response = owner.post("/v1/apikeys", json={"role": "agent", "name": "agent-1"})
    assert response.status_code == 201, response.text
    key: str = response.json()["key"]
    return key


def test_https_answers_with_hsts_and_the_security_headers(tls_server: Server, pki: Pki) -> None:
    with client(tls_server, pki, tls_server.owner_key()) as owner:
        response = owner.get("/v1/ledger/checkpoint")
    assert response.status_code == 200, response.text
    assert response.headers["strict-transport-security"].startswith("max-age=")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cache-control"] == "no-store"


def test_plain_http_is_not_served(tls_server: Server) -> None:
    with pytest.raises(httpx.TransportError), httpx.Client(timeout=2.0) as plain:
        plain.get(f"http://{HOST}:{tls_server.port}/healthz")


def test_an_agent_key_without_a_client_certificate_is_a_403(
    tls_server: Server, pki: Pki, agent_key: str
) -> None:
    with client(tls_server, pki, agent_key) as agent:
        response = agent.get("/v1/ledger/checkpoint")
    assert response.status_code == 403, response.text
    assert "client certificate" in response.json()["detail"]


def test_an_agent_key_with_a_certificate_from_the_client_ca_is_allowed(
    tls_server: Server, pki: Pki, agent_key: str
) -> None:
    with client(tls_server, pki, agent_key, pki.agent) as agent:
        response = agent.get("/v1/ledger/checkpoint")
    assert response.status_code == 200, response.text


def test_a_certificate_from_another_ca_fails_the_handshake_or_is_refused(
    tls_server: Server, pki: Pki, agent_key: str
) -> None:
    try:
        with client(tls_server, pki, agent_key, pki.stranger) as agent:
            status = agent.get("/v1/ledger/checkpoint").status_code
    except httpx.TransportError:
        return
    assert status == 403


def test_keys_of_other_roles_need_no_client_certificate(tls_server: Server, pki: Pki) -> None:
    with client(tls_server, pki, tls_server.owner_key()) as owner:
        created = owner.post("/v1/apikeys", json={"role": "auditor", "name": "no cert"})
        assert created.status_code == 201, created.text
    with client(tls_server, pki, created.json()["key"]) as auditor:
        assert auditor.get("/v1/ledger/checkpoint").status_code == 200
