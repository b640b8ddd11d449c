from datetime import UTC, datetime, timedelta

from egain_token_operator.controller.restarts import COALESCE_WINDOW, restart_time

NOW = datetime(2026, 11, 23, 21, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def test_first_restart_waits_only_for_the_coalescing_window() -> None:
    assert restart_time(NOW, None, MINUTE) == NOW + COALESCE_WINDOW


def test_restarts_are_spaced_by_the_minimum_interval() -> None:
    last = NOW - timedelta(seconds=10)
    assert restart_time(NOW, last, MINUTE) == last + MINUTE


def test_an_old_restart_does_not_delay_the_next() -> None:
    assert restart_time(NOW, NOW - timedelta(hours=1), MINUTE) == NOW + COALESCE_WINDOW
