"""Event times (one spelling per instant) and ISO 8601 durations with calendar clamping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tenure.domain.timefmt import Duration, format_time, is_time, parse_duration, parse_time
from tenure.errors import InvalidInput


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


AWARE = st.datetimes(
    min_value=datetime(1000, 1, 2),
    max_value=datetime(9998, 12, 30),
    timezones=st.sampled_from(
        [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
    ),
)


# ---------------------------------------------------------------- times


def test_time_is_written_in_utc_with_six_fraction_digits_and_z() -> None:
    assert format_time(utc(2026, 11, 28, 22, 0)) == "2026-11-28T22:00:00.000000Z"
    assert format_time(utc(2026, 1, 31, 12, 0, 0, 1)) == "2026-01-31T12:00:00.000001Z"


def test_time_in_another_zone_is_converted_to_utc() -> None:
    moment = datetime(2026, 1, 1, 1, 30, tzinfo=timezone(timedelta(hours=2)))
    assert format_time(moment) == "2025-12-31T23:30:00.000000Z"


def test_naive_time_is_refused() -> None:
    with pytest.raises(InvalidInput):
        format_time(datetime(2026, 1, 1))


@settings(max_examples=200, deadline=None)
@given(moment=AWARE)
def test_formatted_time_parses_back_to_the_same_instant(moment: datetime) -> None:
    text = format_time(moment)
    parsed = parse_time(text)
    assert parsed == moment
    assert parsed.tzinfo is UTC
    assert format_time(parsed) == text
    assert is_time(text)


@settings(max_examples=100, deadline=None)
@given(a=AWARE, b=AWARE)
def test_formatted_times_sort_like_the_instants_they_spell(a: datetime, b: datetime) -> None:
    assert (format_time(a) < format_time(b)) == (a < b)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2026-11-28",
        "2026-11-28T22:00:00Z",  # no fraction
        "2026-11-28T22:00:00.000Z",  # three fraction digits
        "2026-11-28T22:00:00.0000000Z",  # seven fraction digits
        "2026-11-28T22:00:00.000000",  # no Z
        "2026-11-28T22:00:00.000000z",
        "2026-11-28T22:00:00.000000+00:00",
        "2026-11-28 22:00:00.000000Z",
        "2026-11-28t22:00:00.000000Z",
        " 2026-11-28T22:00:00.000000Z",
        "2026-11-28T22:00:00.000000Z\n",
        "2026-02-30T00:00:00.000000Z",  # no such day
        "2025-02-29T00:00:00.000000Z",  # not a leap year
        "2026-13-01T00:00:00.000000Z",
        "2026-00-01T00:00:00.000000Z",
        "2026-11-28T24:00:00.000000Z",
        "2026-11-28T23:60:00.000000Z",
        "2026-11-28T23:59:60.000000Z",  # leap seconds have no spelling
        "\u0662026-11-28T22:00:00.000000Z",  # Arabic-Indic digit
        "+2026-11-28T22:00:00.000000Z",
    ],
)
def test_malformed_times_raise_invalid_input(text: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_time(text, field="data.expires_at")
    assert info.value.field == "data.expires_at"
    assert not is_time(text)


@pytest.mark.parametrize("value", [None, 0, 1.5, b"2026-11-28T22:00:00.000000Z", ["x"]])
def test_non_string_times_raise_invalid_input(value: object) -> None:
    with pytest.raises(InvalidInput):
        parse_time(value)  # type: ignore[arg-type]
    assert not is_time(value)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=40))
def test_parse_time_on_arbitrary_text_raises_only_invalid_input(text: str) -> None:
    try:
        parsed = parse_time(text)
    except InvalidInput:
        return
    assert format_time(parsed) == text


# ---------------------------------------------------------------- durations


def test_p365d_is_exactly_365_days() -> None:
    assert parse_duration("P365D") == Duration(0, timedelta(days=365))
    start = utc(2024, 1, 1)
    assert parse_duration("P365D").after(start) == utc(2024, 12, 31)  # 2024 is a leap year


def test_pt24h_is_exactly_24_hours() -> None:
    assert parse_duration("PT24H") == Duration(0, timedelta(hours=24))
    assert parse_duration("PT24H").after(utc(2026, 3, 1, 12, 30)) == utc(2026, 3, 2, 12, 30)


def test_p1y_is_a_calendar_year() -> None:
    assert parse_duration("P1Y") == Duration(12, timedelta(0))
    assert parse_duration("P1Y").after(utc(2026, 11, 28, 22)) == utc(2027, 11, 28, 22)


def test_p1y_from_february_29_clamps_to_february_28() -> None:
    assert parse_duration("P1Y").after(utc(2024, 2, 29, 10)) == utc(2025, 2, 28, 10)
    assert parse_duration("P4Y").after(utc(2024, 2, 29, 10)) == utc(2028, 2, 29, 10)


def test_p1m_from_january_31_clamps_to_the_end_of_february() -> None:
    assert parse_duration("P1M").after(utc(2026, 1, 31)) == utc(2026, 2, 28)
    assert parse_duration("P1M").after(utc(2024, 1, 31)) == utc(2024, 2, 29)
    assert parse_duration("P1M").after(utc(2026, 3, 31)) == utc(2026, 4, 30)


def test_months_carry_into_years() -> None:
    assert parse_duration("P13M").after(utc(2026, 12, 15)) == utc(2028, 1, 15)
    assert parse_duration("P1Y1M").after(utc(2026, 12, 15)) == utc(2028, 1, 15)
    assert parse_duration("P1M").after(utc(2026, 12, 31)) == utc(2027, 1, 31)


def test_combined_duration_adds_calendar_months_then_exact_time() -> None:
    d = parse_duration("P1Y2M3W4DT5H6M7S")
    assert d == Duration(14, timedelta(weeks=3, days=4, hours=5, minutes=6, seconds=7))
    # Clamp first (Jan 31 + 14 months = Mar 31), then add the exact part.
    assert d.after(utc(2026, 1, 31)) == utc(2027, 3, 31) + timedelta(days=25, seconds=18367)


@pytest.mark.parametrize(
    ("text", "months", "exact"),
    [
        ("P14D", 0, timedelta(days=14)),
        ("P2W", 0, timedelta(weeks=2)),
        ("PT30M", 0, timedelta(minutes=30)),
        ("PT90S", 0, timedelta(seconds=90)),
        ("P6M", 6, timedelta(0)),
        ("P0Y1D", 0, timedelta(days=1)),
    ],
)
def test_duration_components(text: str, months: int, exact: timedelta) -> None:
    assert parse_duration(text) == Duration(months, exact)


@settings(max_examples=150, deadline=None)
@given(moment=AWARE, months=st.integers(1, 48))
def test_calendar_months_land_on_the_same_day_or_the_last_day_of_the_month(
    moment: datetime, months: int
) -> None:
    later = parse_duration(f"P{months}M").after(moment)
    assert (later.year * 12 + later.month) - (moment.year * 12 + moment.month) == months
    assert later.time() == moment.time()
    assert later.day == moment.day or (later.day < moment.day and (later + timedelta(1)).day == 1)


@settings(max_examples=100, deadline=None)
@given(moment=AWARE, days=st.integers(1, 3000), hours=st.integers(0, 100))
def test_exact_durations_add_exact_time(moment: datetime, days: int, hours: int) -> None:
    text = f"P{days}DT{hours}H" if hours else f"P{days}D"
    assert parse_duration(text).after(moment) - moment == timedelta(days=days, hours=hours)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "P",
        "PT",
        "P1DT",
        "1D",
        "P1",
        "P-1D",
        "P1.5D",
        "P0D",
        "PT0S",
        "P0Y0M",
        "p1d",
        "P1d",
        "P1H",  # hours need the T
        "PT1D",  # days must come before the T
        "P1D1Y",  # out of order
        "P1Y ",
        " P1Y",
        "P\u0661D",  # Arabic-Indic digit
        "P1D\n",
        "P9999999999D",  # beyond timedelta
        "PT99999999999999999999S",
        "P" + "9" * 5000 + "D",  # beyond int() string limits
    ],
)
def test_invalid_durations_raise_invalid_input(text: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_duration(text, field="data.grace")
    assert info.value.field == "data.grace"


@pytest.mark.parametrize(
    ("text", "start"),
    [
        ("P9000Y", utc(2026, 1, 1)),
        ("P99999999999Y", utc(2026, 1, 1)),
        ("P999999999D", utc(2026, 1, 1)),
        ("P1M", utc(9999, 12, 1)),
        ("PT1S", utc(9999, 12, 31, 23, 59, 59, 999999)),
    ],
)
def test_duration_ending_after_the_year_9999_raises_invalid_input(
    text: str, start: datetime
) -> None:
    duration = parse_duration(text)
    with pytest.raises(InvalidInput):
        duration.after(start)


@pytest.mark.parametrize("value", [None, 365, b"P1D"])
def test_non_string_durations_raise_invalid_input(value: object) -> None:
    with pytest.raises(InvalidInput):
        parse_duration(value)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(
    text=st.one_of(
        st.text(max_size=20),
        st.text(alphabet="PYMWDTHS0123456789", max_size=30),
        st.integers(0, 10**40).map(lambda n: f"P{n}D"),
    ),
    start=AWARE,
)
def test_durations_from_arbitrary_text_raise_only_invalid_input(text: str, start: datetime) -> None:
    try:
        duration = parse_duration(text)
        end = duration.after(start)
    except InvalidInput:
        return
    assert duration.months > 0 or duration.exact > timedelta(0)
    assert end > start
