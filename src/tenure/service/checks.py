"""Entitlement checks (SPEC "Decisions and the audit log"): ``POST /v1/check``.

A check is a question, so an unknown license is an answer ("no", reason
``unknown_license``), not an error. Each call reads the license, its plan version
and the latest signed checkpoint in one read transaction, then lets the pure
``tenure.domain.decisions.decide`` answer. Nothing here writes.
"""

from __future__ import annotations

import base64
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from tenure.crypto.keystore import hash_license_key
from tenure.domain.decisions import decide
from tenure.domain.state import Row
from tenure.errors import InvalidInput, Unauthenticated
from tenure.service.legacy_import import hash_legacy_key, is_tenure_key
from tenure.store import raw, sql
from tenure.store.engine import quick_read, read_transaction

MAX_BATCH = 1000
SERIAL_PATTERN = re.compile(r"TNR-[A-Z2-7]{5}(?:-[A-Z2-7]{5}){3}", re.ASCII)


@dataclass(frozen=True, slots=True)
class CheckItem:
    """One question of a batch: may ``license`` (serial or key) use ``entitlement``?"""

    license: str
    entitlement: str
    fingerprint: str | None = None


def is_serial(text: str) -> bool:
    """True when ``text`` has the shape of a license serial (``TNR-XXXXX-…``)."""
    return SERIAL_PATTERN.fullmatch(text) is not None


def license_by_key(conn: sa.Connection, account: str, key: str) -> Row | None:
    """The license row of ``account`` whose key is ``key``, or None.

    Only the key's SHA-256 is stored, so the lookup is by ``key_hash``.
    """
    found = raw.execute(
        conn, _SERIAL_BY_KEY, {"account": account, "key_hash": hash_license_key(key)}
    ).fetchone()
    return None if found is None else sql.read_row(conn, account, "licenses", (found[0],))


_SERIAL_BY_KEY = (
    "SELECT serial FROM proj_licenses WHERE account = :account AND key_hash = :key_hash"
)
_HOLDER_BY_KEY = "SELECT account, serial FROM proj_licenses WHERE key_hash = :key_hash"


def find_license(conn: sa.Connection, account: str, license: str) -> Row | None:
    """The license named by ``license`` — a serial, a license key, or the key it had
    in the system it was imported from (docs/import.md) — or None."""
    if is_serial(license):
        return sql.read_row(conn, account, "licenses", (license,))
    found = license_by_key(conn, account, license)
    if found is None and not is_tenure_key(license):
        found = license_by_legacy_key(conn, account, license)
    return found


def license_by_legacy_key(conn: sa.Connection, account: str, key: str) -> Row | None:
    """The license of ``account`` imported with legacy key ``key``, or None. Only a
    Tenure key misses the first lookup by design, so only others pay for this one."""
    found = raw.execute(
        conn, _SERIAL_BY_LEGACY_KEY, {"account": account, "key_hash": hash_legacy_key(key)}
    ).fetchone()
    return None if found is None else sql.read_row(conn, account, "licenses", (found[0],))


_SERIAL_BY_LEGACY_KEY = (
    "SELECT serial FROM proj_legacy_ids WHERE account = :account AND legacy_key_hash = :key_hash"
)
_HOLDER_BY_LEGACY_KEY = (
    "SELECT account, serial FROM proj_legacy_ids WHERE legacy_key_hash = :key_hash LIMIT 2"
)


def _checkpoint_json(conn: sa.Connection, account: str) -> dict[str, Any] | None:
    stored = sql.read_checkpoint(conn, account)
    if stored is None:
        return None
    return {"size": stored.size, "root": base64.b64encode(stored.root).decode()}


@dataclass(frozen=True, slots=True)
class Decided:
    """A check's answer, and the serial of the license it was about (None if unknown):
    the answer shows a serial only to whoever named it, the audit log always."""

    answer: dict[str, Any]
    serial: str | None


def _answer(
    conn: sa.Connection,
    account: str,
    item: CheckItem,
    now: datetime,
    checkpoint: dict[str, Any] | None,
) -> Decided:
    license_row = find_license(conn, account, item.license)
    plan_row = None
    if license_row is not None:
        key = (license_row["plan"], license_row["plan_version"])
        plan_row = sql.read_row(conn, account, "plan_versions", key)
    answer = decide(license_row, plan_row, item.entitlement, now).to_json()
    answer["checkpoint"] = checkpoint
    # Echo the serial only to a caller who named it: a key never reveals its serial.
    if license_row is not None and is_serial(item.license):
        answer["serial"] = license_row["serial"]
    return Decided(answer, None if license_row is None else license_row["serial"])


def check(
    engine: sa.Engine,
    account: str,
    license: str,
    entitlement: str,
    now: datetime,
    fingerprint: str | None = None,
) -> dict[str, Any]:
    """Decide whether ``license`` (serial or key) of ``account`` grants ``entitlement``.

    Answers ``decide(...).to_json()`` plus ``"checkpoint": {"size", "root"}`` (the
    latest signed checkpoint of the account, read in the same transaction; None if
    none was signed yet) and ``"serial"`` when the caller named the license by a
    serial that exists. An unknown license is the answer ``unknown_license``.
    ``fingerprint`` is accepted for activation-aware checks and not used yet.
    Raises ``InvalidInput`` (field ``entitlement``) for a malformed entitlement key
    and for a naive ``now``.
    """
    return decide_one(engine, account, CheckItem(license, entitlement, fingerprint), now).answer


def decide_one(engine: sa.Engine, account: str, item: CheckItem, now: datetime) -> Decided:
    """``check``, with the serial of the license decided about."""
    with quick_read(engine) as conn:
        return _answer(conn, account, item, now, _checkpoint_json(conn, account))


def check_many(
    engine: sa.Engine, account: str, items: Sequence[CheckItem], now: datetime
) -> list[dict[str, Any]]:
    """``check`` for each item, in order, all in one read transaction (one snapshot)."""
    return [decided.answer for decided in decide_many(engine, account, items, now)]


def decide_many(
    engine: sa.Engine, account: str, items: Sequence[CheckItem], now: datetime
) -> list[Decided]:
    """Decide each item, in order, all in one read transaction (one snapshot).

    Raises ``InvalidInput`` with field ``checks`` for more than ``MAX_BATCH`` items,
    and with field ``checks[i].entitlement`` for the first malformed entitlement key.
    """
    if len(items) > MAX_BATCH:
        raise InvalidInput(f"a batch holds at most {MAX_BATCH} checks", field="checks")
    answers: list[Decided] = []
    with read_transaction(engine) as conn:
        checkpoint = _checkpoint_json(conn, account)
        for index, item in enumerate(items):
            try:
                answers.append(_answer(conn, account, item, now, checkpoint))
            except InvalidInput as error:
                field = f"checks[{index}]" + (f".{error.field}" if error.field else "")
                raise InvalidInput(error.message, field=field) from error
    return answers


@dataclass(frozen=True, slots=True)
class LicenseHolder:
    """Who presented ``Authorization: License <key>``: one license of one account."""

    account: str
    serial: str
    key: str

    def may_check(self, license: str) -> bool:
        """True when ``license`` names this holder's own license (its serial or key)."""
        return license == self.serial or hmac.compare_digest(license.encode(), self.key.encode())


def authenticate_license(engine: sa.Engine, key: str) -> LicenseHolder:
    """The holder of license ``key``; raises ``Unauthenticated`` for an unknown key.

    A revoked or suspended license still authenticates: its checks answer why not.
    A license imported from another system also authenticates with its legacy key.
    """
    with quick_read(engine) as conn:
        row = raw.execute(conn, _HOLDER_BY_KEY, {"key_hash": hash_license_key(key)}).fetchone()
        if row is None and not is_tenure_key(key):
            legacy = raw.execute(
                conn, _HOLDER_BY_LEGACY_KEY, {"key_hash": hash_legacy_key(key)}
            ).fetchall()
            # The same legacy key imported into two accounts names no one license.
            row = legacy[0] if len(legacy) == 1 else None
    if row is None:
        raise Unauthenticated("invalid license key")
    return LicenseHolder(row[0], row[1], key)
