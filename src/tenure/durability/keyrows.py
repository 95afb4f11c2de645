"""Row files: the service tables a restored service needs at once, shipped
continuously (not only in snapshots) and signed.

These rows are not derived from the ledger. A restore that took them only from the
last snapshot would lose what changed since, and with no snapshot at all the
service would start with no owner key and no webhooks. The shipper therefore
writes each file below, whenever its rows change, to ``<account>/<name>`` with a
note ``<account>/<name>.sig`` signed by the ledger key (``<format> / account /
sha256``). A restore uses a file only if the note verifies and names the file's
hash: anyone able to write to a site could otherwise plant an API key hash or a
webhook URL.

- ``keys.json`` (``KEYS``): API key hashes, public token keys, the account row.
- ``service.json`` (``SERVICE``): webhooks (their secrets sealed as stored, with a
  subkey of the master key), the webhook cursor, deployment reports, activation
  sightings, drift findings and passes.
- ``datakeys.json`` (``DATA_KEYS``): the customers' data keys, wrapped under the
  master key as stored. A file of its own: it changes only when a customer with
  personal data is created or erased (``service.json`` changes with every webhook
  cursor move). An erased customer's key leaves the file with the next pass, and a
  restore deletes any key of a customer its ledger erased.

Idempotency records grow with every request, so they are shipped with the
segments instead (``tenure.durability.idemrows``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import orjson

from tenure.durability.sites import Site
from tenure.errors import TenureError
from tenure.ledger.note import NoteSigner, NoteVerifier, open_note, sign_note
from tenure.store.unit import Transaction

Rows = dict[str, list[dict[str, Any]]]


@dataclass(frozen=True)
class RowFile:
    """One signed file of service rows at a site."""

    name: str
    format: str
    tables: tuple[str, ...]

    def note_text(self, account: str, body: bytes) -> str:
        """What the ledger key signs for ``body``: the format, account and hash."""
        return f"{self.format}\n{account}\n{hashlib.sha256(body).hexdigest()}\n"


KEYS = RowFile("keys.json", "tenure-keyrows v1", ("api_keys", "signing_keys", "accounts"))
SERVICE = RowFile(
    "service.json",
    "tenure-service-rows v1",
    (
        "webhooks",
        "webhook_cursors",
        "deployments",
        "activation_sightings",
        "drift_findings",
        "drift_passes",
    ),
)
DATA_KEYS = RowFile("datakeys.json", "tenure-datakeys v1", ("data_keys",))
FILES = (KEYS, SERVICE, DATA_KEYS)


def files_of(tables: Collection[str] | None) -> tuple[RowFile, ...]:
    """The row files all of whose tables are among ``tables`` (every file when None):
    a pre-upgrade snapshot ships from a database read before its upgrade, whose
    schema may lack some (``store.databases.readable_tables``)."""
    return tuple(f for f in FILES if tables is None or set(f.tables) <= set(tables))


TABLES = KEYS.tables
"""The key rows (kept for callers that name them)."""


def read_rows(tx: Transaction, account: str, file: RowFile = KEYS) -> Rows:
    """The account's rows of the file's tables, in key order, as plain JSON objects."""
    return tx.service_rows.read(account, file.tables)


def encode(account: str, rows: Rows, file: RowFile = KEYS) -> bytes:
    """The file's bytes: equal rows give equal bytes."""
    # Sorted keys make equal rows equal bytes, so an unchanged file is not sent again.
    # Not the canonical encoder: drift passes hold a float, which it refuses; the
    # note signs these exact bytes, so no canonical form is needed to verify them.
    return orjson.dumps(
        {"format": file.format, "account": account, "rows": rows}, option=orjson.OPT_SORT_KEYS
    )


def publish(
    site: Site, account: str, body: bytes, signer: NoteSigner, file: RowFile = KEYS
) -> None:
    """Write the rows, then the note that vouches for them."""
    note = sign_note(file.note_text(account, body), [signer])
    site.put(f"{account}/{file.name}", body)
    site.put(f"{account}/{file.name}.sig", note.encode())


def load(
    site: Site, account: str, verifiers: list[NoteVerifier], file: RowFile = KEYS
) -> tuple[Rows | None, str | None]:
    """The site's rows of ``file`` for ``account`` if they are there and vouched
    for; else None and why (None and None when the site has none)."""
    path = f"{account}/{file.name}"
    body, note = site.get(path), site.get(f"{path}.sig")
    if body is None and note is None:
        return None, None
    if body is None or note is None:
        return None, f"the rows of {path} at the site are incomplete"
    try:
        text, _ = open_note(note.decode(), verifiers)
    except (TenureError, UnicodeDecodeError):
        return None, f"{path} at the site is not signed by the ledger key"
    if text != file.note_text(account, body):
        return None, f"{path} at the site does not match its signed note"
    try:
        data = orjson.loads(body)
        rows: Rows = {name: list(data["rows"].get(name, [])) for name in file.tables}
    except (ValueError, KeyError, TypeError, AttributeError):
        return None, f"{path} at the site cannot be read"
    return rows, None
