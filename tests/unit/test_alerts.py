"""The anomaly detector (docs/webhooks.md, "Anomaly alerts"): a pure function of
window counts."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from tenure.ops.alerts import _clear, _raise_in, detect, list_alerts, window_counts
from tenure.store.engine import create_engine
from tenure.store.migrations import upgrade
from tenure.store.unit import SqlStore

counts = st.integers(min_value=0, max_value=10_000)
histories = st.lists(counts, min_size=1, max_size=200)
ks = st.floats(min_value=0, max_value=10, allow_nan=False)
minimums = st.integers(min_value=1, max_value=1000)


@given(counts, st.integers(min_value=1, max_value=200), ks, minimums)
def test_a_flat_series_never_alerts(level: int, length: int, k: float, minimum: int) -> None:
    assert not detect(level, [level] * length, k, max(minimum, level)).alert


@given(histories, ks, minimums)
def test_a_count_above_mean_plus_k_std_and_the_minimum_always_alerts(
    history: list[int], k: float, minimum: int
) -> None:
    mean, std = statistics.fmean(history), statistics.pstdev(history)
    spike = int(max(mean + k * std, minimum)) + 1
    verdict = detect(spike, history, k, minimum)
    assert verdict.alert
    assert verdict.threshold >= minimum


@given(histories, ks, minimums, counts)
def test_never_alerts_at_or_below_the_threshold(
    history: list[int], k: float, minimum: int, current: int
) -> None:
    verdict = detect(current, history, k, minimum)
    assert verdict.alert == (current > verdict.threshold)
    assert verdict.threshold == max(verdict.mean + k * verdict.std, minimum)


@given(histories, ks)
def test_nothing_alerts_at_or_below_the_minimum_count(history: list[int], k: float) -> None:
    assert not detect(10, history, k, 10).alert


def test_an_empty_history_has_a_zero_baseline() -> None:
    verdict = detect(11, [], 4.0, 10)
    assert (verdict.mean, verdict.std, verdict.threshold, verdict.alert) == (0.0, 0.0, 10.0, True)


def test_mass_revocation_after_a_quiet_day_alerts() -> None:
    quiet = [0, 1, 0, 2, 1, 0] * 16
    assert detect(40, quiet, 4.0, 10).alert
    assert not detect(3, quiet, 4.0, 10).alert


def test_window_counts_puts_each_stamp_in_its_window_and_ignores_the_rest() -> None:
    end = datetime(2026, 1, 1, 12, tzinfo=UTC)
    window = timedelta(minutes=15)
    stamps = [
        (end - timedelta(minutes=1), 1),  # current window
        (end - timedelta(minutes=15), 2),  # first moment of the current window
        (end - timedelta(minutes=16), 4),  # the window before
        (end - timedelta(minutes=45), 8),  # the oldest of 3
        (end - timedelta(minutes=46), 100),  # before them all
        (end, 100),  # not yet
    ]
    assert window_counts(stamps, end, window, 2) == [8, 4, 3]


@given(st.lists(st.integers(min_value=0, max_value=3599), max_size=100))
def test_window_counts_add_up_to_the_stamps_inside(offsets: list[int]) -> None:
    end = datetime(2026, 1, 1, tzinfo=UTC)
    stamps = [(end - timedelta(seconds=s + 1), 1) for s in offsets]
    assert sum(window_counts(stamps, end, timedelta(minutes=10), 5)) == len(offsets)


def test_an_alert_cleared_and_raised_again_within_a_minute_is_a_new_alert(
    tmp_path: Path,
) -> None:
    """With ``alert_interval_seconds`` under a minute, raise, clear and raise again can
    fall in one minute: the second alert must not collide with the first's id."""
    engine = create_engine(f"sqlite:///{(tmp_path / 'tenure.db').as_posix()}")
    upgrade(engine)
    start = datetime(2026, 3, 1, 12, 0, 5, tzinfo=UTC)
    spike = detect(50, [0, 0], 4.0, 10)
    store = SqlStore(engine)
    try:
        with store.shared_write() as tx:
            assert _raise_in(tx, "acct", "revocations", spike, start, timedelta(minutes=5))[
                "raised"
            ]
        _clear(store, "acct", "revocations", start + timedelta(seconds=10))
        again = start + timedelta(seconds=20)
        with store.shared_write() as tx:
            assert _raise_in(tx, "acct", "revocations", spike, again, timedelta(minutes=5))[
                "raised"
            ]
        assert len(list_alerts(store, "acct")) == 2
    finally:
        engine.dispose()
