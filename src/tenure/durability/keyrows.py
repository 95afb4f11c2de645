"""Key rows: the small service tables a restored service needs at once, shipped
continuously (not only in snapshots) and signed.

The API key hashes, the public token keys and the account row of an account are
not derived from the ledger. A restore that took them only from the last snapshot
would lose the keys made since, and with no snapshot at all the service would start
with no owner key. The shipper therefore writes them, whenever they change, to
``<account>/keys.json`` with a note ``<account>/keys.json.sig`` signed by the ledger
key (``tenure-keyrows v1 / account / sha256``). A restore uses them only if the
note verifies and names the file's hash: anyone able to write to a site could
otherwise plant an API key hash.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from tenure.canonical import canonical_json
from tenure.durability.sites import Site
from tenure.errors import TenureError
from tenure.ledger.note import NoteSigner, NoteVerifier, open_note, sign_note
from tenure.store.unit import Transaction

FORMAT = "tenure-keyrows v1"
TABLES = ("api_keys", "signing_keys", "accounts")


def read_rows(tx: Transaction, account: str) -> dict[str, list[dict[str, Any]]]:
    """The account's rows of ``TABLES``, in key order, as plain JSON objects."""
    return tx.service_rows.read(account, TABLES)


def encode(account: str, rows: dict[str, list[dict[str, Any]]]) -> bytes:
    return canonical_json({"format": FORMAT, "account": account, "rows": rows})


def publish(site: Site, account: str, body: bytes, signer: NoteSigner) -> None:
    """Write the rows, then the note that vouches for them."""
    digest = hashlib.sha256(body).hexdigest()
    note = sign_note(f"{FORMAT}\n{account}\n{digest}\n", [signer])
    site.put(f"{account}/keys.json", body)
    site.put(f"{account}/keys.json.sig", note.encode())


def load(
    site: Site, account: str, verifiers: list[NoteVerifier]
) -> tuple[dict[str, list[dict[str, Any]]] | None, str | None]:
    """The site's key rows of ``account`` if they are there and vouched for; else
    None and why (None and None when the site has none)."""
    body, note = site.get(f"{account}/keys.json"), site.get(f"{account}/keys.json.sig")
    if body is None and note is None:
        return None, None
    if body is None or note is None:
        return None, "the key rows at the site are incomplete"
    try:
        text, _ = open_note(note.decode(), verifiers)
    except (TenureError, UnicodeDecodeError):
        return None, "the key rows at the site are not signed by the ledger key"
    if text != f"{FORMAT}\n{account}\n{hashlib.sha256(body).hexdigest()}\n":
        return None, "the key rows at the site do not match their signed note"
    data = orjson.loads(body)
    return data["rows"], None
