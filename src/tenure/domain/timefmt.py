"""Times and durations as they appear in events.

Times are RFC 3339 UTC with exactly six fractional digits and a ``Z``
(``2026-11-28T22:00:00.000000Z``) so that each instant has one spelling and one
canonical leaf. Durations are ISO 8601 (``P365D``, ``P1Y``, ``PT24H``); years and
months are calendar arithmetic (the day is clamped to the month's end).
"""

from __future__ import annotations

import calendar
import functools
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tenure.errors import InvalidInput

_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z\Z", re.ASCII)
_DURATION = re.compile(
    r"^P(?:(?P<y>\d+)Y)?(?:(?P<mo>\d+)M)?(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?"
    r"(?:T(?:(?P<h>\d+)H)?(?:(?P<mi>\d+)M)?(?:(?P<s>\d+)S)?)?\Z",
    re.ASCII,
)


def format_time(moment: datetime) -> str:
    """The one spelling of ``moment`` (which must be timezone-aware) in events."""
    if moment.tzinfo is None:
        raise InvalidInput("time must carry a timezone")
    m = moment.astimezone(UTC)
    # Spelled out by hand: strftime costs more than the rest of an append's time handling.
    return (
        f"{m.year:04d}-{m.month:02d}-{m.day:02d}T"
        f"{m.hour:02d}:{m.minute:02d}:{m.second:02d}.{m.microsecond:06d}Z"
    )


def parse_time(text: str, field: str = "time") -> datetime:
    """Parse a time written by ``format_time``; raise ``InvalidInput`` otherwise."""
    if not isinstance(text, str) or not _TIME.match(text):
        raise InvalidInput(f"{field} must look like 2026-01-31T12:00:00.000000Z", field=field)
    try:
        return datetime.fromisoformat(text)  # the regex above pinned the exact spelling
    except ValueError as exc:
        raise InvalidInput(f"{field} is not a valid date and time", field=field) from exc


def is_time(text: str) -> bool:
    try:
        parse_time(text)
    except InvalidInput:
        return False
    return True


@dataclass(frozen=True)
class Duration:
    """An ISO 8601 duration split into calendar months and exact time."""

    months: int
    exact: timedelta

    def after(self, moment: datetime) -> datetime:
        """``moment`` plus this duration; ``InvalidInput`` past the year 9999."""
        try:
            if self.months:
                total = moment.month - 1 + self.months
                year, month = moment.year + total // 12, total % 12 + 1
                day = min(moment.day, calendar.monthrange(year, month)[1])
                moment = moment.replace(year=year, month=month, day=day)
            return moment + self.exact
        except (ValueError, OverflowError) as exc:
            raise InvalidInput("duration ends after the year 9999", field="duration") from exc

    def longest(self) -> timedelta:
        """The longest this duration lasts from any moment: a month counts as 31 days."""
        return timedelta(days=31 * self.months) + self.exact


@functools.lru_cache(maxsize=256)
def parse_duration(text: str, field: str = "duration") -> Duration:
    """Parse an ISO 8601 duration such as ``P365D``, ``P1Y`` or ``PT24H``."""
    match = _DURATION.match(text) if isinstance(text, str) else None
    if match is None or text in ("P", "PT") or text.endswith("T"):
        raise InvalidInput(
            f"{field} must be an ISO 8601 duration such as P365D or PT24H", field=field
        )
    if len(text) > 64:
        raise InvalidInput(f"{field} is too long", field=field)
    parts = {name: int(value) for name, value in match.groupdict().items() if value}
    months = parts.get("y", 0) * 12 + parts.get("mo", 0)
    try:
        exact = timedelta(
            weeks=parts.get("w", 0),
            days=parts.get("d", 0),
            hours=parts.get("h", 0),
            minutes=parts.get("mi", 0),
            seconds=parts.get("s", 0),
        )
    except OverflowError as exc:
        raise InvalidInput(f"{field} is too long", field=field) from exc
    if months == 0 and exact == timedelta(0):
        raise InvalidInput(f"{field} must be longer than zero", field=field)
    return Duration(months, exact)
