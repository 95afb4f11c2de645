"""Webhooks (docs/webhooks.md): subscriptions, the events they receive, and the
deliveries waiting for the worker (``tenure.ops.webhook_worker``).

A subscription names a URL and event-type patterns (``*``, ``license.*`` or an
exact type). Its secret (Standard Webhooks ``whsec_<base64>``) is generated here,
shown once, and stored sealed with AES-256-GCM under a subkey of the master key.

Events come from two places: every ledger event (the worker tails each account's
ledger from a persisted cursor, ``fan_out``) and events other code ``enqueue``s
(lifecycle notices, anomaly alerts). Either way a delivery row per matching
subscription holds the exact body to send, so every retry sends the same bytes
under the same ``webhook-id``. Nothing here talks to the network except the URL
policy's DNS lookup: the API only writes rows, so a slow endpoint never slows it.

Payloads never hold personal data: the ``PERSONAL`` fields of an event's data
(customers' names and e-mail addresses, sealed or not) are left out.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import os
import re
import socket
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast
from urllib.parse import urlsplit

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tenure.config import Settings
from tenure.crypto.keystore import derive_key, load_master_key
from tenure.domain.events import EVENT_TYPES, personal_fields
from tenure.domain.timefmt import format_time
from tenure.errors import ConfigurationError, Conflict, InvalidInput, NotFound
from tenure.ops.scrape import count_source
from tenure.ops.views import (
    AttemptView,
    CreatedWebhook,
    DeletedWebhook,
    DeliveryView,
    WebhookView,
)
from tenure.store.unit import Store, Transaction
from tenure.store.webhooks import Delivery, NewDelivery, Subscription

SECRET_PREFIX = "whsec_"  # noqa: S105 - the Standard Webhooks prefix, not a secret
STATUSES = ("pending", "delivered", "failed")
MAX_PATTERNS = 50
MAX_URL = 2000
_PATTERN = re.compile(r"^(\*|[a-z][a-z_]*(\.[a-z][a-z_]*)*(\.\*)?)$")
_SEAL_VERSION = "v1:"
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*\.?$")


class WebhookUrlRefused(InvalidInput):
    """A webhook URL that is not http(s) or whose host is not a public address."""

    code = "webhook_url_refused"


# ---------------------------------------------------------------- secrets


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(os.urandom(32)).decode()


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value: ``v1,<base64 HMAC-SHA256>`` of
    ``{id}.{timestamp}.{body}`` keyed with the secret's decoded bytes."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


@dataclass(frozen=True)
class SecretBox:
    """Seals webhook secrets with a subkey of the master key; the account and
    webhook id are the associated data (a sealed secret copied to another
    subscription does not open)."""

    key: bytes

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        secret = settings.master_key.get_secret_value() if settings.master_key else None
        return cls(derive_key(load_master_key(settings.data_dir, secret), "webhook-secrets"))

    @staticmethod
    def _ad(account: str, webhook: str) -> bytes:
        return f"tenure.webhook.v1\n{account}\n{webhook}".encode()

    def seal(self, account: str, webhook: str, secret: str) -> str:
        nonce = os.urandom(12)
        sealed = AESGCM(self.key).encrypt(nonce, secret.encode(), self._ad(account, webhook))
        return _SEAL_VERSION + base64.b64encode(nonce + sealed).decode()

    def open(self, account: str, webhook: str, sealed: str) -> str:
        """The secret; ``ConfigurationError`` if it does not open (another master key)."""
        try:
            raw = base64.b64decode(sealed.removeprefix(_SEAL_VERSION), validate=True)
            plain = AESGCM(self.key).decrypt(raw[:12], raw[12:], self._ad(account, webhook))
        except (binascii.Error, ValueError, InvalidTag):
            raise ConfigurationError(f"the secret of webhook {webhook} does not open") from None
        return plain.decode()


# ---------------------------------------------------------------- URL policy

Resolver = Callable[[str, int], list[str]]


def resolve(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to (``WebhookUrlRefused`` if none)."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError) as exc:
        raise WebhookUrlRefused(f"the host {host} does not resolve: {exc}", field="url") from None
    return sorted({str(info[4][0]) for info in found})


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        # An IPv4 address inside an IPv6 one (mapped, or 6to4) is judged as itself.
        ip = ip.ipv4_mapped or ip.sixtofour or ip
    return ip.is_global and not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


def check_url(url: str, allow_private: bool, resolver: Resolver = resolve) -> list[str]:
    """Refuse (``WebhookUrlRefused``, field ``url``) a URL that is not http(s), has
    credentials or no host, or whose host resolves to any non-public address
    (private, loopback, link-local, multicast, reserved, unspecified) unless
    ``allow_private``. Returns the addresses the host resolves to now."""
    if len(url) > MAX_URL:
        raise WebhookUrlRefused(f"url must be at most {MAX_URL} characters", field="url")
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise WebhookUrlRefused("url is not a valid URL", field="url") from None
    if parts.scheme not in ("http", "https"):
        raise WebhookUrlRefused("url must be an http or https URL", field="url")
    if not parts.hostname or parts.username is not None or parts.password is not None:
        raise WebhookUrlRefused("url must name a host and no credentials", field="url")
    if not (_HOST.match(parts.hostname) or _is_ip(parts.hostname)):
        raise WebhookUrlRefused(f"{parts.hostname!r} is not a host name", field="url")
    addresses = resolver(parts.hostname, port)
    if not allow_private:
        for address in addresses:
            if not _public(address):
                raise WebhookUrlRefused(
                    f"url's host {parts.hostname} resolves to {address}, which is not a "
                    "public address (TENURE_WEBHOOK_ALLOW_PRIVATE allows it)",
                    field="url",
                )
    return addresses


# ---------------------------------------------------------------- subscriptions


def check_patterns(patterns: Sequence[str]) -> list[str]:
    """The event-type patterns, validated: ``*``, ``prefix.*`` or an exact type."""
    if not 1 <= len(patterns) <= MAX_PATTERNS:
        raise InvalidInput(f"events must list 1 to {MAX_PATTERNS} patterns", field="events")
    for pattern in patterns:
        if not isinstance(pattern, str) or len(pattern) > 64 or not _PATTERN.match(pattern):
            raise InvalidInput(
                "each event pattern is *, a type such as license.revoked, or a prefix "
                "such as license.*",
                field="events",
            )
    return sorted(set(patterns))


def matches(patterns: Sequence[str], event_type: str) -> bool:
    """Whether ``event_type`` is one the patterns subscribe to."""
    for pattern in patterns:
        if pattern == "*" or pattern == event_type:
            return True
        if pattern.endswith(".*") and event_type.startswith(pattern[:-1]):
            return True
    return False


def _id(prefix: str) -> str:
    return prefix + base64.b32encode(os.urandom(15)).decode().lower()[:24]


def webhook_view(subscription: Subscription) -> WebhookView:
    """A subscription as the API shows it: never its secret."""
    return WebhookView.model_validate(subscription, from_attributes=True)


def create_webhook(
    tx: Transaction,
    account: str,
    url: str,
    events: Sequence[str],
    description: str,
    box: SecretBox,
    now: datetime,
) -> CreatedWebhook:
    """Add a subscription (in the caller's write transaction) → its view with
    ``secret``, the only time the secret is shown. It receives the ledger events
    appended from now on; the URL must already have passed ``check_url``."""
    webhook, secret = _id("whk_"), new_secret()
    head = tx.ledger.head(account)
    size = head.size if head else 0
    subscription = Subscription(
        id=webhook,
        url=url,
        events=tuple(check_patterns(events)),
        description=description,
        secret=box.seal(account, webhook, secret),
        enabled=True,
        from_seq=size,
        created_at=format_time(now),
    )
    tx.webhooks.add(account, subscription)
    tx.webhooks.start_cursor(account, size)
    return CreatedWebhook(**webhook_view(subscription).model_dump(), secret=secret)


def list_webhooks(store: Store, account: str) -> list[WebhookView]:
    """The account's subscriptions, oldest first."""
    with store.read() as tx:
        return [webhook_view(s) for s in tx.webhooks.subscriptions(account)]


def _subscription(tx: Transaction, account: str, webhook: str) -> Subscription:
    found = tx.webhooks.subscription(account, webhook)
    if found is None:
        raise NotFound(f"webhook {webhook} not found")
    return found


def get_webhook(store: Store, account: str, webhook: str) -> WebhookView:
    """One subscription; ``NotFound`` if the account has none of that id."""
    with store.read() as tx:
        return webhook_view(_subscription(tx, account, webhook))


def set_enabled(tx: Transaction, account: str, webhook: str, enabled: bool) -> WebhookView:
    """Enable or disable a subscription → its view. A disabled one receives no new
    events and its pending deliveries wait until it is enabled again. ``NotFound``
    for an unknown one."""
    _subscription(tx, account, webhook)
    tx.webhooks.set_enabled(account, webhook, enabled)
    return webhook_view(_subscription(tx, account, webhook))


def delete_webhook(tx: Transaction, account: str, webhook: str) -> DeletedWebhook:
    """Remove a subscription and its deliveries → ``{"id", "deleted": true}``;
    ``NotFound`` for an unknown one."""
    _subscription(tx, account, webhook)
    tx.webhooks.remove(account, webhook)
    return DeletedWebhook(id=webhook, deleted=True)


# ---------------------------------------------------------------- deliveries


def delivery_view(delivery: Delivery) -> DeliveryView:
    """A delivery as the API shows it, with every attempt made."""
    d = delivery
    return DeliveryView(
        id=d.id,
        webhook=d.webhook,
        event_type=d.event_type,
        status=cast(Any, d.status),
        attempts=d.attempts,
        next_attempt_at=d.next_attempt_at if d.status == "pending" else None,
        last_status_code=d.last_status_code,
        last_error=d.last_error,
        history=[AttemptView(**attempt) for attempt in orjson.loads(d.history)],
        created_at=d.created_at,
        payload=orjson.loads(d.payload),
    )


def list_deliveries(
    store: Store, account: str, webhook: str, status: str | None = None, limit: int = 100
) -> list[DeliveryView]:
    """The subscription's deliveries, newest first, optionally only those of
    ``status`` (pending, delivered, failed). ``NotFound`` for an unknown webhook,
    ``InvalidInput`` for an unknown status."""
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(STATUSES)}", field="status")
    with store.read() as tx:
        _subscription(tx, account, webhook)
        found = tx.webhooks.deliveries(account, webhook, status, limit)
    return [delivery_view(d) for d in found]


def retry_delivery(
    tx: Transaction, account: str, webhook: str, delivery: str, now: datetime
) -> DeliveryView:
    """Make a failed (or waiting) delivery due now → its view. ``NotFound`` for an
    unknown one, ``Conflict`` for one already delivered. A lease is kept: a delivery
    in flight is not claimed (and sent) a second time; its attempt records as usual."""
    found = tx.webhooks.delivery(account, webhook, delivery)
    if found is None:
        raise NotFound(f"delivery {delivery} of webhook {webhook} not found")
    if found.status == "delivered":
        raise Conflict(f"delivery {delivery} was already delivered")
    tx.webhooks.make_due(account, webhook, delivery, format_time(now))
    return delivery_view(cast(Delivery, tx.webhooks.delivery(account, webhook, delivery)))


def _delivery_id(webhook: str, event: str) -> str:
    digest = hashlib.sha256(f"{webhook}\n{event}".encode()).digest()
    return "msg_" + base64.b32encode(digest[:15]).decode().lower()


def enqueue(
    tx: Transaction, account: str, event_type: str, data: dict[str, Any], now: datetime
) -> int:
    """Queue a non-ledger event (a notice, an alert) for every enabled subscription
    of ``account`` that matches ``event_type``, in the caller's write transaction.
    ``data`` must hold no personal data. Returns the number of deliveries queued."""
    stamp = format_time(now)
    body = orjson.dumps({"type": event_type, "timestamp": stamp, "data": data}).decode()
    event = _id("evt_")
    queued = [
        NewDelivery(_delivery_id(s.id, event), s.id, event_type, body)
        for s in tx.webhooks.subscriptions(account, enabled_only=True)
        if matches(s.events, event_type)
    ]
    tx.webhooks.queue(account, queued, stamp)
    return len(queued)


def ledger_payload(seq: int, subject: str | None, leaf: bytes) -> tuple[str, str, str]:
    """(event id, event type, body) of the webhook event for ledger event ``seq``:
    ``{"type", "timestamp", "data": {"id", "seq", "subject", "reason", "data"}}``
    with the event's ``PERSONAL`` fields (and their ``sealed_in``) left out."""
    return _payload(seq, subject, orjson.loads(leaf))


def _payload(seq: int, subject: str | None, event: dict[str, Any]) -> tuple[str, str, str]:
    personal = personal_fields(event["type"], int(event.get("schema", 1)))
    data = {
        key: value
        for key, value in event.get("data", {}).items()
        if key not in personal and not (personal and key == "sealed_in")
    }
    body = {
        "type": event["type"],
        "timestamp": event["time"],
        "data": {
            "id": event["id"],
            "seq": seq,
            "subject": subject,
            "reason": event.get("reason"),
            "data": data,
        },
    }
    return event["id"], event["type"], orjson.dumps(body).decode()


def _subject(event: dict[str, Any]) -> str | None:
    """The key of the object ``event`` is about, as the ledger stores it beside the
    event (``Event.subject``)."""
    known = EVENT_TYPES.get(event["type"])
    value = event.get("data", {}).get(known.subject) if known else None
    return value if isinstance(value, str) else None


def _ledger_payloads(
    tx: Transaction, account: str, start: int, stop: int
) -> Iterator[tuple[int, str, str, str]]:
    """(seq, event id, event type, body) of the account's ledger events in
    ``[start, stop)``."""
    for seq, leaf in tx.ledger.leaves(account, start, stop):
        event = orjson.loads(leaf)
        yield (seq, *_payload(seq, _subject(event), event))


def fan_out(tx: Transaction, account: str, now: datetime, batch: int = 500) -> int:
    """Queue deliveries for the account's ledger events after its cursor (at most
    ``batch`` of them), in the caller's write transaction, and move the cursor.
    Delivery ids are derived from webhook and event ids, so two processes fanning
    out the same events queue each delivery once. Returns the events read."""
    cursor = tx.webhooks.cursor(account)
    head = tx.ledger.head(account)
    if cursor is None or head is None or cursor >= head.size:
        return 0
    end = min(head.size, cursor + batch)
    subscriptions = tx.webhooks.subscriptions(account, enabled_only=True)
    queued = [
        NewDelivery(_delivery_id(s.id, event_id), s.id, event_type, body)
        for seq, event_id, event_type, body in _ledger_payloads(tx, account, cursor, end)
        for s in subscriptions
        if seq >= s.from_seq and matches(s.events, event_type)
    ]
    tx.webhooks.queue(account, queued, format_time(now))
    tx.webhooks.move_cursor(account, cursor, end)
    return int(end - cursor)


def backlog(tx: Transaction, account: str) -> int:
    """Deliveries of ``account`` still pending."""
    return tx.webhooks.pending(account)


backlog_metric = count_source("tenure_webhook_backlog", "Webhook deliveries pending.", backlog)
"""``tenure_webhook_backlog``: deliveries waiting to be delivered."""
