"""Webhook signing, URL policy, patterns, secrets and payloads (docs/webhooks.md)."""

from __future__ import annotations

import base64
import time

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tenure.errors import ConfigurationError, InvalidInput
from tenure.ops import webhooks
from tenure.ops.webhook_worker import next_wait, parse_schedule


def fixed(*addresses: str) -> webhooks.Resolver:
    def resolver(host: str, port: int) -> list[str]:
        return list(addresses)

    return resolver


@given(st.text(max_size=2000), st.text(alphabet="abcdefghijklmnop_0123456789", min_size=1))
def test_signature_verifies_with_the_reference_standard_webhooks_library(
    body: str, message_id: str
) -> None:
    secret = webhooks.new_secret()
    stamp = int(time.time())
    headers = {
        "webhook-id": message_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": webhooks.sign(secret, message_id, stamp, body.encode()),
    }
    Webhook(secret).verify(body.encode(), headers, json_parse=False)


def test_a_signature_under_another_secret_does_not_verify() -> None:
    stamp = int(time.time())
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(stamp),
        "webhook-signature": webhooks.sign(webhooks.new_secret(), "msg_1", stamp, b"{}"),
    }
    with pytest.raises(WebhookVerificationError):
        Webhook(webhooks.new_secret()).verify(b"{}", headers)


def test_secret_is_whsec_and_at_least_24_random_bytes() -> None:
    secret = webhooks.new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) >= 24
    assert webhooks.new_secret() != secret


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",  # noqa: S104 - an address refused, nothing binds to it
        "224.0.0.1",
        "240.0.0.1",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "::ffff:127.0.0.1",
        "ff02::1",
        "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    with pytest.raises(webhooks.WebhookUrlRefused) as refused:
        webhooks.check_url("https://hooks.example.com/x", False, fixed(address))
    assert refused.value.field == "url"
    webhooks.check_url("https://hooks.example.com/x", True, fixed(address))


def test_a_host_with_one_private_address_among_public_ones_is_refused() -> None:
    with pytest.raises(webhooks.WebhookUrlRefused):
        webhooks.check_url("https://x.example/", False, fixed("93.184.216.34", "10.0.0.1"))


def test_public_addresses_pass() -> None:
    found = webhooks.check_url("https://x.example:8443/hook", False, fixed("93.184.216.34"))
    assert found == ["93.184.216.34"]


def test_localhost_resolves_to_loopback_and_is_refused() -> None:
    with pytest.raises(webhooks.WebhookUrlRefused, match="not a public address"):
        webhooks.check_url("http://localhost:9/hook", False)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://x.example/",
        "file:///etc/passwd",
        "gopher://x/",
        "http://user:pw@x.example/",
        "http:///x",
        "http://x..y/",
        "http://a%00b/",
        "http://x.example:99999/",
    ],
)
def test_other_schemes_credentials_and_missing_hosts_are_refused(url: str) -> None:
    with pytest.raises(webhooks.WebhookUrlRefused):
        webhooks.check_url(url, True, fixed("93.184.216.34"))


def test_patterns_match_all_prefixes_and_exact_types() -> None:
    assert webhooks.matches(["*"], "license.revoked")
    assert webhooks.matches(["license.*"], "license.revoked")
    assert not webhooks.matches(["license.*"], "licenses.revoked")
    assert not webhooks.matches(["license.*"], "customer.created")
    assert webhooks.matches(["alert.raised"], "alert.raised")
    assert not webhooks.matches(["alert.raised"], "alert.cleared")


@pytest.mark.parametrize("patterns", [[], ["License.*"], ["license.**"], ["*.revoked"], ["x" * 70]])
def test_malformed_patterns_are_invalid_input(patterns: list[str]) -> None:
    with pytest.raises(InvalidInput) as invalid:
        webhooks.check_patterns(patterns)
    assert invalid.value.field == "events"


def test_sealed_secret_opens_only_for_its_own_webhook() -> None:
    box = webhooks.SecretBox(bytes(range(32)))
    sealed = box.seal("default", "whk_a", "whsec_c2VjcmV0")
    assert "c2VjcmV0" not in sealed
    assert box.open("default", "whk_a", sealed) == "whsec_c2VjcmV0"
    with pytest.raises(ConfigurationError):
        box.open("default", "whk_b", sealed)
    with pytest.raises(ConfigurationError):
        webhooks.SecretBox(bytes(32)).open("default", "whk_a", sealed)


def test_retry_schedule_parses_units_and_runs_out() -> None:
    schedule = parse_schedule("5s, 30s,2m,10m,1h,250ms,3")
    assert schedule == (5.0, 30.0, 120.0, 600.0, 3600.0, 0.25, 3.0)
    assert next_wait((5.0, 30.0), 1, 0.0) == 5.0
    assert next_wait((5.0, 30.0), 2, 0.999) == pytest.approx(30.0 * 1.24975)
    assert next_wait((5.0, 30.0), 3, 0.5) is None
    with pytest.raises(InvalidInput):
        parse_schedule("5 minutes")


def test_ledger_payload_leaves_personal_data_out() -> None:
    leaf = orjson.dumps(
        {
            "id": "evt_" + "0" * 32,
            "type": "customer.created",
            "schema": 2,
            "time": "2026-01-01T00:00:00.000000Z",
            "actor": {"id": "key_x", "role": "owner", "auth": "api_key"},
            "reason": None,
            "idempotency_key": None,
            "data": {
                "customer": "cus_1",
                "name": "Ada Lovelace",
                "email": "ada@example.com",
                "external_id": "crm-1",
                "sealed_in": None,
            },
        }
    )
    event_id, event_type, body = webhooks.ledger_payload(7, "cus_1", leaf)
    assert (event_id, event_type) == ("evt_" + "0" * 32, "customer.created")
    assert "Ada" not in body
    assert "ada@" not in body
    payload = orjson.loads(body)
    assert payload["type"] == "customer.created"
    assert payload["timestamp"] == "2026-01-01T00:00:00.000000Z"
    assert payload["data"]["seq"] == 7
    assert payload["data"]["data"] == {"customer": "cus_1", "external_id": "crm-1"}
