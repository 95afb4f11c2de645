"""Idempotency records shipped with the segments, signed.

A client that retries a request across a restore must get the first answer back,
not a second license or a second revocation. The record of a request that appended
events is written in the transaction of its events, so the shipper sends, with
each segment ``<first>-<end>``, the records whose first event is in it:
``<where>/idempotency/<first>-<end>.json`` and a note ``….json.sig`` signed by the
ledger key (``tenure-idempotency v1 / account / first / end / sha256``). It writes
them before the segment, so a site that holds a segment holds its records (a pass
cut short is done again).

A restore takes the records of every segment it replays, after the snapshot's, and
uses a file only if its note verifies and names its hash and range, and each
record's first event is in that range and carries the record's key. Records of
requests that appended nothing are in snapshots only: a retry of such a request
appends nothing either unless the state has changed since.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from tenure.durability.segments import SegmentName
from tenure.durability.sites import Site
from tenure.errors import TenureError
from tenure.ledger.note import NoteSigner, NoteVerifier, open_note, sign_note

FORMAT = "tenure-idempotency v1"

Record = dict[str, Any]


def path_of(where: str, name: SegmentName) -> str:
    """Where the records of segment ``name`` live under the namespace ``where``."""
    return f"{where}/idempotency/{name.first:020d}-{name.end:020d}.json"


def _note_text(account: str, name: SegmentName, body: bytes) -> str:
    digest = hashlib.sha256(body).hexdigest()
    return f"{FORMAT}\n{account}\n{name.first}\n{name.end}\n{digest}\n"


def encode(account: str, name: SegmentName, records: list[Record]) -> bytes:
    """The file of ``records`` (as ``ServiceRows.idempotency_of_events`` reads them)."""
    data = {"format": FORMAT, "account": account, "first": name.first, "end": name.end}
    return orjson.dumps({**data, "records": records}, option=orjson.OPT_SORT_KEYS)


def publish(
    site: Site, where: str, account: str, name: SegmentName, body: bytes, signer: NoteSigner
) -> None:
    """Write the records of the segment ``name``, then the note that vouches for them."""
    path = path_of(where, name)
    site.put(path, body)
    site.put(path + ".sig", sign_note(_note_text(account, name, body), [signer]).encode())


def load(
    site: Site,
    where: str,
    account: str,
    name: SegmentName,
    keys: dict[int, str | None],
    verifiers: list[NoteVerifier],
) -> tuple[list[Record], str | None]:
    """The records shipped with segment ``name`` if they are there and proven, else
    none and why. ``keys`` gives the idempotency key of each event of the segment
    (from the proven leaves)."""
    path = path_of(where, name)
    body, note = site.get(path), site.get(path + ".sig")
    if body is None or note is None:
        return [], f"{path} is missing"
    try:
        text, _ = open_note(note.decode(), verifiers)
    except (TenureError, UnicodeDecodeError):
        return [], f"{path} is not signed by the ledger key"
    if text != _note_text(account, name, body):
        return [], f"{path} does not match its signed note"
    try:
        records: list[Record] = orjson.loads(body)["records"]
        proven = all(keys.get(r["first_seq"]) == r["key"] for r in records)
    except (ValueError, KeyError, TypeError):
        return [], f"{path} cannot be read"
    if not proven:
        return [], f"{path} names events that do not carry its keys"
    return records, None
