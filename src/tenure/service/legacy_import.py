"""Legacy import (docs/import.md): licenses of another licensing system, from CSV or
JSON, become Tenure licenses mapped from their old ids and keys.

``parse_rows`` turns a file into ``LegacyRow``s and ``RowError``s (a bad row never
stops the parse). ``import_rows`` submits each good row as one
``ImportLegacyLicense`` — all of a row's events or none — with an idempotency key
derived from ``(system, legacy_id)``, so importing the same file again appends
nothing. The legacy key is kept only as ``legacy_key_hash``; it never reaches the
ledger, the idempotency records or the audit log in clear.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal

import orjson

from tenure.canonical import canonical_json
from tenure.domain.commands import ImportLegacyLicense
from tenure.domain.events import Actor
from tenure.domain.licensekeys import hash_legacy_key, is_serial, is_tenure_key
from tenure.domain.timefmt import format_time
from tenure.errors import InvalidInput, TenureError
from tenure.service.ledger import Ledger, Outcome, Submission
from tenure.store.unit import Store

Format = Literal["csv", "json"]

COLUMNS = (
    "legacy_id",
    "legacy_key",
    "customer_id",
    "customer_name",
    "customer_email",
    "product",
    "plan",
    "plan_version",
    "starts_at",
    "expires_at",
    "status",
    "overrides",
)
REQUIRED = ("legacy_id", "legacy_key", "product", "plan")
STATUSES = ("active", "suspended", "revoked")
MAX_ID = 200
MAX_TEXT = 500
IMPORT_ACTOR = Actor("legacy-import", "issuer", "local")
"""The actor of CLI imports. Fixed, because the idempotency of a row covers its actor:
a re-run by another operator must find the rows already imported."""

_CODE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}", re.ASCII)
_ENTITLEMENT = re.compile(r"seats|(?:feature|module|quota):[a-z0-9][a-z0-9._-]{0,63}", re.ASCII)
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)


def import_key(system: str, legacy_id: str) -> str:
    """The idempotency key of the row ``legacy_id`` of ``system``."""
    digest = hashlib.sha256(canonical_json(["tenure.legacy-import.v1", system, legacy_id]))
    return "legacy-import:" + digest.hexdigest()


# ---------------------------------------------------------------- parsing


@dataclass(frozen=True)
class LegacyRow:
    """One well-formed row (times already in the ledger's spelling)."""

    row: int
    legacy_id: str
    legacy_key_hash: str
    product: str
    plan: str
    customer_id: str | None
    customer_name: str | None
    customer_email: str | None
    plan_version: int | None
    starts_at: str | None
    expires_at: str | None
    perpetual: bool
    status: str
    overrides: dict[str, bool | int] = field(default_factory=dict)

    def command(self, system: str) -> ImportLegacyLicense:
        return ImportLegacyLicense(
            system=system,
            legacy_id=self.legacy_id,
            legacy_key_hash=self.legacy_key_hash,
            product=self.product,
            plan=self.plan,
            customer_external_id=self.customer_id,
            customer_name=self.customer_name,
            customer_email=self.customer_email,
            plan_version=self.plan_version,
            starts_at=self.starts_at,
            expires_at=self.expires_at,
            perpetual=self.perpetual,
            status=self.status,
            overrides=dict(self.overrides),
        )


@dataclass(frozen=True)
class RowError:
    """A row that was not imported: its number, its legacy id if known, and why."""

    row: int
    reason: str
    legacy_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"row": self.row, "legacy_id": self.legacy_id, "reason": self.reason}


class _Bad(Exception):
    """A row's first problem; becomes a ``RowError``."""


def _text(raw: Any, name: str, limit: int = MAX_TEXT) -> str | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise _Bad(f"{name} must be text")
    text = str(raw).strip()
    if not text:
        return None
    if len(text) > limit:
        raise _Bad(f"{name} is longer than {limit} characters")
    if _CONTROL.search(text):
        raise _Bad(f"{name} contains control characters")
    return text


def _required(raw: Any, name: str, limit: int = MAX_TEXT) -> str:
    text = _text(raw, name, limit)
    if text is None:
        raise _Bad(f"{name} is empty")
    return text


def _code(raw: Any, name: str) -> str:
    text = _required(raw, name)
    if not _CODE.fullmatch(text):
        raise _Bad(f"{name} {text!r} is not a code (lowercase letters, digits, . _ -)")
    return text


def _plan_version(raw: Any) -> int | None:
    if isinstance(raw, int) and not isinstance(raw, bool):
        number = raw
    else:
        text = _text(raw, "plan_version", 12)
        if text is None:
            return None
        if not text.isascii() or not text.isdigit():
            raise _Bad(f"plan_version {text!r} is not a whole number")
        number = int(text)
    if not 1 <= number <= 2**31 - 1:
        raise _Bad("plan_version must be at least 1")
    return number


def parse_moment(text: str, name: str) -> str:
    """A legacy date (``2024-05-01``, midnight UTC) or date-time (RFC 3339; without
    an offset it is UTC) in the ledger's spelling; raises ``InvalidInput``."""
    try:
        if _DATE.fullmatch(text):
            day = date.fromisoformat(text)
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
        else:
            moment = datetime.fromisoformat(text)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
        spelled = format_time(moment)
    except (ValueError, OverflowError):
        raise InvalidInput(f"{name} {text!r} is not a date or date-time", field=name) from None
    if not spelled[:4].isdigit() or spelled[:4] < "1970":
        raise InvalidInput(f"{name} {text!r} is before 1970", field=name)
    return spelled


def _moment(raw: Any, name: str) -> str | None:
    text = _text(raw, name, 64)
    if text is None:
        return None
    try:
        return parse_moment(text, name)
    except InvalidInput as exc:
        raise _Bad(exc.message) from None


def _override_value(key: str, raw: Any) -> bool | int:
    numeric = key == "seats" or key.startswith("quota:")
    if isinstance(raw, str):
        lowered = raw.strip().lower()
        value: Any = {"true": True, "false": False}.get(lowered, lowered)
        if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 16:
            value = int(value)
    else:
        value = raw
    if numeric and type(value) is int and 0 <= value <= 2**53 - 1:
        return int(value)
    if not numeric and type(value) is bool:
        return bool(value)
    kind = "a non-negative integer" if numeric else "true or false"
    raise _Bad(f"override {key} must be {kind}")


def _overrides(raw: Any) -> dict[str, bool | int]:
    if raw is None or raw == "":
        return {}
    pairs: Iterable[tuple[Any, Any]]
    if isinstance(raw, dict):
        pairs = raw.items()
    elif isinstance(raw, str):
        parts = [p for p in raw.split(";") if p.strip()]
        if any("=" not in p for p in parts):
            raise _Bad("overrides must look like seats=10;feature:export=true")
        pairs = [tuple(p.split("=", 1)) for p in parts]  # type: ignore[misc]
    else:
        raise _Bad("overrides must be an object or key=value;… text")
    found: dict[str, bool | int] = {}
    for key_raw, value in pairs:
        key = str(key_raw).strip()
        if not _ENTITLEMENT.fullmatch(key):
            raise _Bad(f"override key {key[:70]!r} is not an entitlement key")
        if key in found:
            raise _Bad(f"override {key} is given twice")
        found[key] = _override_value(key, value)
    return found


def _legacy_key(raw: Any) -> str:
    key = _required(raw, "legacy_key")
    if is_tenure_key(key) or is_serial(key):
        raise _Bad("legacy_key looks like a Tenure key or serial")
    return hash_legacy_key(key)


def _expiry(raw: Any) -> tuple[str | None, bool]:
    text = _text(raw, "expires_at", 64)
    if text is not None and text.lower() == "never":
        return None, True
    return _moment(text, "expires_at"), False


def parse_row(number: int, fields: Mapping[str, Any]) -> LegacyRow | RowError:
    """Check one row's fields (column name → value); never raises."""
    legacy_id: str | None = None
    try:
        unknown = sorted(str(k) for k in fields if k not in COLUMNS)
        if unknown:
            raise _Bad(f"unknown field {unknown[0][:70]!r}")
        legacy_id = _required(fields.get("legacy_id"), "legacy_id", MAX_ID)
        customer_id = _text(fields.get("customer_id"), "customer_id")
        email = _text(fields.get("customer_email"), "customer_email", 254)
        if email is not None and not _EMAIL.fullmatch(email):
            raise _Bad("customer_email is not an email address")
        if customer_id is None and email is None:
            raise _Bad("customer_id or customer_email is required")
        starts_at = _moment(fields.get("starts_at"), "starts_at")
        expires_at, perpetual = _expiry(fields.get("expires_at"))
        if starts_at and expires_at and expires_at <= starts_at:
            raise _Bad("expires_at is not after starts_at")
        status = (_text(fields.get("status"), "status", 16) or "active").lower()
        if status not in STATUSES:
            raise _Bad(f"status must be one of {', '.join(STATUSES)}")
        return LegacyRow(
            row=number,
            legacy_id=legacy_id,
            legacy_key_hash=_legacy_key(fields.get("legacy_key")),
            product=_code(fields.get("product"), "product"),
            plan=_code(fields.get("plan"), "plan"),
            customer_id=customer_id,
            customer_name=_text(fields.get("customer_name"), "customer_name"),
            customer_email=email,
            plan_version=_plan_version(fields.get("plan_version")),
            starts_at=starts_at,
            expires_at=expires_at,
            perpetual=perpetual,
            status=status,
            overrides=_overrides(fields.get("overrides")),
        )
    except _Bad as bad:
        return RowError(number, str(bad), legacy_id)


def _csv_records(text: str) -> Iterator[list[str]]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise InvalidInput(f"CSV line {reader.line_num}: {exc}", field="file") from None
        yield record


def parse_csv(text: str) -> list[LegacyRow | RowError]:
    """Rows of a CSV file whose first line names the columns (``COLUMNS``).

    Row 1 is the first record after the header; blank lines count as rows and are
    skipped. Raises ``InvalidInput`` (field ``file``) for a missing or bad header
    or a file the CSV reader cannot read; each bad row is a ``RowError``.
    """
    records = _csv_records(text.removeprefix("\ufeff"))
    header = [name.strip().lower() for name in next(records, [])]
    _check_header(header)
    parsed: list[LegacyRow | RowError] = []
    for number, record in enumerate(records, start=1):
        if not any(cell.strip() for cell in record):
            continue
        if len(record) != len(header):
            parsed.append(RowError(number, f"has {len(record)} fields, the header {len(header)}"))
            continue
        parsed.append(parse_row(number, dict(zip(header, record, strict=True))))
    return parsed


def _check_header(header: list[str]) -> None:
    if not header:
        raise InvalidInput("the CSV file is empty (no header line)", field="file")
    unknown = [name for name in header if name not in COLUMNS]
    if unknown:
        raise InvalidInput(f"unknown CSV column {unknown[0][:70]!r}", field="file")
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        raise InvalidInput(f"the CSV header lacks column {missing[0]}", field="file")
    if len(set(header)) != len(header):
        raise InvalidInput("the CSV header names a column twice", field="file")


def parse_json(data: bytes | str) -> list[LegacyRow | RowError]:
    """Rows of a JSON array of objects (or ``{"licenses": [...]}``); row 1 is the
    first element. Raises ``InvalidInput`` (field ``file``) for anything else."""
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"the file is not JSON: {exc}", field="file") from None
    if isinstance(document, dict) and set(document) == {"licenses"}:
        document = document["licenses"]
    if not isinstance(document, list):
        raise InvalidInput("the JSON file must be an array of license objects", field="file")
    parsed: list[LegacyRow | RowError] = []
    for number, item in enumerate(document, start=1):
        if isinstance(item, dict):
            parsed.append(parse_row(number, item))
        else:
            parsed.append(RowError(number, "is not a JSON object"))
    return parsed


def parse_rows(fmt: Format, data: bytes) -> list[LegacyRow | RowError]:
    """``parse_csv`` (UTF-8) or ``parse_json`` on a file's bytes."""
    if fmt == "json":
        return parse_json(data)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"the file is not UTF-8 (byte {exc.start})", field="file") from None
    return parse_csv(text)


# ---------------------------------------------------------------- importing


@dataclass
class ImportReport:
    """What an import did, row by row (``errors`` sorted by row)."""

    account: str
    system: str
    rows: int = 0
    imported: list[dict[str, Any]] = field(default_factory=list)
    already_imported: list[dict[str, Any]] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "system": self.system,
            "rows": self.rows,
            "imported": len(self.imported),
            "already_imported": len(self.already_imported),
            "failed": len(self.errors),
            "errors": [e.to_json() for e in sorted(self.errors, key=lambda e: e.row)],
        }


def _known_keys(store: Store, account: str) -> dict[str, tuple[str, str]]:
    """Each legacy key hash the account has mapped: its ``(system, legacy_id)``."""
    with store.read() as tx:
        found = tx.projection.rows(account, "legacy_ids")
    return {row["legacy_key_hash"]: (row["system"], row["legacy_id"]) for row in found}


def _unique_keys(
    rows: list[LegacyRow], known: dict[str, tuple[str, str]], system: str
) -> tuple[list[LegacyRow], list[RowError]]:
    """Rows whose legacy key names no other license: a check by that key must find
    exactly one."""
    first: dict[str, LegacyRow] = {}
    kept: list[LegacyRow] = []
    errors: list[RowError] = []
    for row in rows:
        owner = known.get(row.legacy_key_hash)
        earlier = first.get(row.legacy_key_hash)
        if owner is not None and owner != (system, row.legacy_id):
            errors.append(RowError(row.row, "legacy_key is already mapped", row.legacy_id))
        elif earlier is not None and earlier.legacy_id != row.legacy_id:
            reason = f"legacy_key is the same as row {earlier.row}'s"
            errors.append(RowError(row.row, reason, row.legacy_id))
        else:
            first.setdefault(row.legacy_key_hash, row)
            kept.append(row)
    return kept, errors


def _reason(error: BaseException) -> str:
    if isinstance(error, TenureError) and error.code == "idempotency_key_reused":
        return "legacy_id was already imported with different data"
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text[:300]


def import_rows(
    ledger: Ledger,
    store: Store,
    account: str,
    system: str,
    parsed: list[LegacyRow | RowError],
    actor: Actor = IMPORT_ACTOR,
    progress: Callable[[int], None] | None = None,
    window: int = 2000,
) -> ImportReport:
    """Import the good rows of ``parsed`` into ``account`` as licenses of ``system``.

    Each row is one submission (all its events or none), keyed by ``import_key``:
    a row imported before (same data) is reported in ``already_imported``; a
    failing row (unknown plan, a legacy id imported with other data, a legacy key of
    another license, …) in ``errors`` with a one-line reason, and the other rows go
    on. Up to ``window`` submissions are in flight, so the writer commits many rows
    per transaction. Raises ``InvalidInput`` for a system name that is not a code.
    """
    if not _CODE.fullmatch(system):
        raise InvalidInput("system must be a code (lowercase letters, digits, . _ -)", "system")
    report = ImportReport(account, system, rows=len(parsed))
    report.errors = [p for p in parsed if isinstance(p, RowError)]
    good = [p for p in parsed if isinstance(p, LegacyRow)]
    good, clashes = _unique_keys(good, _known_keys(store, account), system)
    report.errors.extend(clashes)
    reason = f"legacy import from {system}"
    done = 0
    for start in range(0, len(good), window):
        chunk = good[start : start + window]
        futures: list[Future[Outcome]] = [
            ledger.submit(
                Submission(
                    account,
                    row.command(system),
                    actor,
                    reason=reason,
                    idempotency_key=import_key(system, row.legacy_id),
                )
            )
            for row in chunk
        ]
        for row, future in zip(chunk, futures, strict=True):
            _record(report, row, future)
        done += len(chunk)
        if progress is not None:
            progress(done)
    report.errors.sort(key=lambda e: e.row)
    return report


def _record(report: ImportReport, row: LegacyRow, future: Future[Outcome]) -> None:
    try:
        outcome = future.result()
    except TenureError as exc:
        report.errors.append(RowError(row.row, _reason(exc), row.legacy_id))
        return
    entry = {"row": row.row, "legacy_id": row.legacy_id, "serial": outcome.result["serial"]}
    if outcome.replayed or not outcome.result.get("created"):
        report.already_imported.append(entry)
    else:
        report.imported.append(entry)
