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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import orjson
import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from prometheus_client.core import Metric

from tenure.config import Settings
from tenure.crypto.keystore import derive_key, load_master_key
from tenure.domain.events import personal_fields
from tenure.domain.timefmt import format_time
from tenure.errors import ConfigurationError, Conflict, InvalidInput, NotFound
from tenure.observability.metrics import account_gauge
from tenure.ops.scrape import state_source
from tenure.store import sql
from tenure.store import tables as t
from tenure.store.engine import read_transaction

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


def webhook_view(row: Any) -> dict[str, Any]:
    """A subscription as the API shows it: never its secret."""
    return {
        "id": row.id,
        "url": row.url,
        "events": orjson.loads(row.events),
        "description": row.description,
        "enabled": bool(row.enabled),
        "created_at": row.created_at,
    }


def create_webhook(
    conn: sa.Connection,
    account: str,
    url: str,
    events: Sequence[str],
    description: str,
    box: SecretBox,
    now: datetime,
) -> dict[str, Any]:
    """Insert a subscription (in the caller's write transaction) → its view with
    ``secret``, the only time the secret is shown. It receives the ledger events
    appended from now on; the URL must already have passed ``check_url``."""
    webhook, secret = _id("whk_"), new_secret()
    head = sql.read_head(conn, account)
    size = head.size if head else 0
    patterns = check_patterns(events)
    row = {
        "account": account,
        "id": webhook,
        "url": url,
        "events": orjson.dumps(patterns).decode(),
        "description": description,
        "secret": box.seal(account, webhook, secret),
        "enabled": True,
        "from_seq": size,
        "created_at": format_time(now),
    }
    conn.execute(sa.insert(t.webhooks).values(row))
    cursor = conn.scalar(
        sa.select(t.webhook_cursors.c.next_seq).where(t.webhook_cursors.c.account == account)
    )
    if cursor is None:
        conn.execute(sa.insert(t.webhook_cursors).values(account=account, next_seq=size))
    return {
        "id": webhook,
        "url": url,
        "events": patterns,
        "description": description,
        "enabled": True,
        "created_at": row["created_at"],
        "secret": secret,
    }


def list_webhooks(engine: sa.Engine, account: str) -> list[dict[str, Any]]:
    """The account's subscriptions, oldest first."""
    w = t.webhooks.c
    with read_transaction(engine) as conn:
        rows = conn.execute(
            sa.select(t.webhooks).where(w.account == account).order_by(w.created_at, w.id)
        ).all()
    return [webhook_view(row) for row in rows]


def _row(conn: sa.Connection, account: str, webhook: str) -> Any:
    w = t.webhooks.c
    row = conn.execute(sa.select(t.webhooks).where(w.account == account, w.id == webhook)).first()
    if row is None:
        raise NotFound(f"webhook {webhook} not found")
    return row


def get_webhook(engine: sa.Engine, account: str, webhook: str) -> dict[str, Any]:
    """One subscription; ``NotFound`` if the account has none of that id."""
    with read_transaction(engine) as conn:
        return webhook_view(_row(conn, account, webhook))


def set_enabled(conn: sa.Connection, account: str, webhook: str, enabled: bool) -> dict[str, Any]:
    """Enable or disable a subscription → its view. A disabled one receives no new
    events and its pending deliveries wait until it is enabled again."""
    _row(conn, account, webhook)
    w = t.webhooks.c
    conn.execute(
        sa.update(t.webhooks).where(w.account == account, w.id == webhook).values(enabled=enabled)
    )
    return webhook_view(_row(conn, account, webhook))


def delete_webhook(conn: sa.Connection, account: str, webhook: str) -> dict[str, Any]:
    """Remove a subscription and its deliveries → ``{"id", "deleted": true}``."""
    _row(conn, account, webhook)
    d = t.webhook_deliveries.c
    conn.execute(sa.delete(t.webhook_deliveries).where(d.account == account, d.webhook == webhook))
    w = t.webhooks.c
    conn.execute(sa.delete(t.webhooks).where(w.account == account, w.id == webhook))
    return {"id": webhook, "deleted": True}


# ---------------------------------------------------------------- deliveries


def delivery_view(row: Any) -> dict[str, Any]:
    """A delivery as the API shows it, with every attempt made."""
    return {
        "id": row.id,
        "webhook": row.webhook,
        "event_type": row.event_type,
        "status": row.status,
        "attempts": row.attempts,
        "next_attempt_at": row.next_attempt_at if row.status == "pending" else None,
        "last_status_code": row.last_status_code,
        "last_error": row.last_error,
        "history": orjson.loads(row.history),
        "created_at": row.created_at,
        "payload": orjson.loads(row.payload),
    }


def list_deliveries(
    engine: sa.Engine, account: str, webhook: str, status: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """The subscription's deliveries, newest first, optionally only those of
    ``status`` (pending, delivered, failed). ``NotFound`` for an unknown webhook,
    ``InvalidInput`` for an unknown status."""
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(STATUSES)}", field="status")
    d = t.webhook_deliveries.c
    query = sa.select(t.webhook_deliveries).where(d.account == account, d.webhook == webhook)
    if status is not None:
        query = query.where(d.status == status)
    with read_transaction(engine) as conn:
        _row(conn, account, webhook)
        rows = conn.execute(query.order_by(d.created_at.desc(), d.id.desc()).limit(limit)).all()
    return [delivery_view(row) for row in rows]


def retry_delivery(
    conn: sa.Connection, account: str, webhook: str, delivery: str, now: datetime
) -> dict[str, Any]:
    """Make a failed (or waiting) delivery due now → its view. ``NotFound`` for an
    unknown one, ``Conflict`` for one already delivered. A lease is kept: a delivery
    in flight is not claimed (and sent) a second time; its attempt records as usual."""
    d = t.webhook_deliveries.c
    where = (d.account == account, d.webhook == webhook, d.id == delivery)
    row = conn.execute(sa.select(t.webhook_deliveries).where(*where)).first()
    if row is None:
        raise NotFound(f"delivery {delivery} of webhook {webhook} not found")
    if row.status == "delivered":
        raise Conflict(f"delivery {delivery} was already delivered")
    conn.execute(
        sa.update(t.webhook_deliveries)
        .where(*where)
        .values(status="pending", next_attempt_at=format_time(now))
    )
    return delivery_view(conn.execute(sa.select(t.webhook_deliveries).where(*where)).one())


def _delivery_id(webhook: str, event: str) -> str:
    digest = hashlib.sha256(f"{webhook}\n{event}".encode()).digest()
    return "msg_" + base64.b32encode(digest[:15]).decode().lower()


_INSERT_DELIVERY = sa.text(
    "INSERT INTO webhook_deliveries (account, id, webhook, event_type, payload, status, "
    "attempts, next_attempt_at, lease_until, last_status_code, last_error, history, "
    "created_at) VALUES (:account, :id, :webhook, :event_type, :payload, 'pending', 0, "
    ":now, NULL, NULL, NULL, '[]', :now) ON CONFLICT DO NOTHING"
)


def _subscriptions(conn: sa.Connection, account: str) -> list[tuple[str, list[str], int]]:
    w = t.webhooks.c
    rows = conn.execute(
        sa.select(w.id, w.events, w.from_seq).where(w.account == account, w.enabled.is_(True))
    ).all()
    return [(row.id, orjson.loads(row.events), int(row.from_seq)) for row in rows]


def _insert_deliveries(conn: sa.Connection, rows: list[dict[str, Any]]) -> int:
    if rows:
        conn.execute(_INSERT_DELIVERY, rows)
    return len(rows)


def enqueue(
    conn: sa.Connection, account: str, event_type: str, data: dict[str, Any], now: datetime
) -> int:
    """Queue a non-ledger event (a notice, an alert) for every enabled subscription
    of ``account`` that matches ``event_type``, in the caller's write transaction.
    ``data`` must hold no personal data. Returns the number of deliveries queued."""
    stamp = format_time(now)
    body = orjson.dumps({"type": event_type, "timestamp": stamp, "data": data}).decode()
    event = _id("evt_")
    rows = [
        {
            "account": account,
            "id": _delivery_id(webhook, event),
            "webhook": webhook,
            "event_type": event_type,
            "payload": body,
            "now": stamp,
        }
        for webhook, patterns, _ in _subscriptions(conn, account)
        if matches(patterns, event_type)
    ]
    return _insert_deliveries(conn, rows)


def ledger_payload(seq: int, subject: str | None, leaf: bytes) -> tuple[str, str, str]:
    """(event id, event type, body) of the webhook event for ledger event ``seq``:
    ``{"type", "timestamp", "data": {"id", "seq", "subject", "reason", "data"}}``
    with the event's ``PERSONAL`` fields (and their ``sealed_in``) left out."""
    event = orjson.loads(leaf)
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


def fan_out(conn: sa.Connection, account: str, now: datetime, batch: int = 500) -> int:
    """Queue deliveries for the account's ledger events after its cursor (at most
    ``batch`` of them), in the caller's write transaction, and move the cursor.
    Delivery ids are derived from webhook and event ids, so two processes fanning
    out the same events queue each delivery once. Returns the events read."""
    c = t.webhook_cursors.c
    cursor = conn.scalar(sa.select(c.next_seq).where(c.account == account))
    head = sql.read_head(conn, account)
    if cursor is None or head is None or cursor >= head.size:
        return 0
    end = min(head.size, cursor + batch)
    subscriptions = _subscriptions(conn, account)
    e = t.ledger_events.c
    events = conn.execute(
        sa.select(e.seq, e.subject, e.leaf)
        .where(e.account == account, e.seq >= cursor, e.seq < end)
        .order_by(e.seq)
    ).all()
    rows = []
    stamp = format_time(now)
    for event in events:
        event_id, event_type, body = ledger_payload(int(event.seq), event.subject, event.leaf)
        for webhook, patterns, from_seq in subscriptions:
            if event.seq >= from_seq and matches(patterns, event_type):
                row = {"account": account, "id": _delivery_id(webhook, event_id)}
                row.update(webhook=webhook, event_type=event_type, payload=body, now=stamp)
                rows.append(row)
    _insert_deliveries(conn, rows)
    conn.execute(
        sa.update(t.webhook_cursors)
        .where(c.account == account, c.next_seq == cursor)
        .values(next_seq=end)
    )
    return int(end - cursor)


def cursor_accounts(conn: sa.Connection) -> list[str]:
    """Accounts whose ledger the fan-out tails (those that ever had a webhook)."""
    return list(conn.scalars(sa.select(t.webhook_cursors.c.account)))


def backlog(conn: sa.Connection, account: str) -> int:
    """Deliveries of ``account`` still pending."""
    d = t.webhook_deliveries.c
    count = conn.scalar(
        sa.select(sa.func.count())
        .select_from(t.webhook_deliveries)
        .where(d.account == account, d.status == "pending")
    )
    return int(count or 0)


@state_source
def backlog_metric(conn: sa.Connection, account: str) -> Iterable[Metric]:
    """``tenure_webhook_backlog``: deliveries waiting to be delivered."""
    yield account_gauge(
        "tenure_webhook_backlog", "Webhook deliveries pending.", account, backlog(conn, account)
    )
