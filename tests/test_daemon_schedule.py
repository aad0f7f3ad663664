"""The daemon's schedule: poll intervals with jitter, exponential back-off, restored back-offs."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from pmsync.app.daemon.schedule import Schedule, failure_delay, jittered
from pmsync.simulators.clock import FakeClock


def make_schedule(clock: FakeClock, jitter: float = 0.0) -> Schedule:
    return Schedule(
        jitter=jitter,
        failure_backoff=30.0,
        max_failure_backoff=600.0,
        rng=random.Random(7),
        clock=clock,
    )


class TestDelays:
    def test_failure_delay_doubles_up_to_the_maximum(self) -> None:
        delays = [failure_delay(n, 30.0, 600.0) for n in range(1, 8)]
        assert delays == [30.0, 60.0, 120.0, 240.0, 480.0, 600.0, 600.0]

    def test_no_failure_means_no_delay(self) -> None:
        assert failure_delay(0, 30.0, 600.0) == 0.0

    @pytest.mark.parametrize("jitter", [0.0, 0.1, 0.5])
    def test_jitter_stays_within_its_fraction(self, jitter: float) -> None:
        rng = random.Random(1)
        values = [jittered(100.0, jitter, rng) for _ in range(500)]
        assert min(values) >= 100.0 * (1 - jitter)
        assert max(values) <= 100.0 * (1 + jitter)
        if jitter:
            assert len({round(v, 6) for v in values}) > 100  # it really varies


class TestSchedule:
    def test_a_new_stream_is_due_at_once_and_then_after_its_interval(
        self, clock: FakeClock
    ) -> None:
        schedule = make_schedule(clock)
        key = ("zendesk", "tickets")
        schedule.run_now(key)
        assert schedule.due([key]) == [key]
        schedule.succeeded(key, 300.0)
        assert schedule.due([key]) == []
        clock.advance(299.0)
        assert schedule.due([key]) == []
        clock.advance(1.0)
        assert schedule.due([key]) == [key]

    def test_failures_back_off_exponentially_and_a_success_resets(self, clock: FakeClock) -> None:
        schedule = make_schedule(clock)
        key = ("zendesk", "tickets")
        assert [schedule.failed(key) for _ in range(3)] == [30.0, 60.0, 120.0]
        assert schedule.timer(key).failures == 3
        schedule.succeeded(key, 300.0)
        assert schedule.timer(key).failures == 0
        assert schedule.failed(key) == 30.0

    def test_the_longest_overdue_stream_comes_first(self, clock: FakeClock) -> None:
        schedule = make_schedule(clock)
        a, b = ("c", "a"), ("c", "b")
        schedule.postpone(a, 10.0)
        schedule.postpone(b, 5.0)
        clock.advance(20.0)
        assert schedule.due([a, b]) == [b, a]
        assert schedule.seconds_until_due([a, b]) == 0.0

    def test_a_stored_back_off_is_honoured_after_a_restart(self, clock: FakeClock) -> None:
        schedule = make_schedule(clock)
        key = ("zendesk", "tickets")
        schedule.restore(key, 3, datetime.now(UTC) + timedelta(seconds=100))
        assert schedule.timer(key).failures == 3
        assert schedule.due([key]) == []
        wait = schedule.seconds_until_due([key])
        assert wait is not None
        assert 95.0 < wait <= 100.0

    def test_a_healthy_stored_stream_runs_at_once(self, clock: FakeClock) -> None:
        schedule = make_schedule(clock)
        key = ("zendesk", "tickets")
        schedule.restore(key, 0, datetime.now(UTC) + timedelta(seconds=100))
        assert schedule.due([key]) == [key]
