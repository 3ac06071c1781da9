"""DORA's keys against a hand-computed history: 10 releases in 10 days, 2 rolled back."""

from __future__ import annotations

from datetime import datetime, timedelta

from promotion_service.domain.dora import Rollout, keys

START, END = datetime(2026, 11, 1), datetime(2026, 11, 11)
HOUR = timedelta(hours=1)


def history() -> tuple[list[Rollout], list[datetime]]:
    """Release i goes live on Nov (1+i) at 10:00, is verified at 10:30, and was committed i+1
    hours before it went live; releases 3 and 7 are rolled back at 11:00 and 12:00. One
    release and one failure before the window do not count."""
    rollouts = [Rollout(datetime(2026, 10, 31, 10), datetime(2026, 10, 31, 11),
                        datetime(2026, 10, 30), failed=True)]
    for i in range(10):
        live = datetime(2026, 11, 1 + i, 10)
        rollouts.append(Rollout(live, live + HOUR / 2, live - (i + 1) * HOUR,
                                failed=i in (3, 7)))
    failures = [datetime(2026, 10, 31, 12), datetime(2026, 11, 4, 11), datetime(2026, 11, 8, 12)]
    return rollouts, failures


def test_the_four_keys_of_a_known_history():
    found = keys(*history(), START, END)
    assert found.deployments == 10 and found.deployments_per_day == 1.0
    assert found.per_day == (1,) * 10
    # lead times are 1.5 h ... 10.5 h: the median is between 5.5 h and 6.5 h
    assert found.lead_time_seconds == 6 * 3600
    assert (found.failed_deployments, found.change_failure_rate) == (2, 0.2)
    # restored by the next verified release: Nov 5 10:30 (23.5 h) and Nov 9 10:30 (22.5 h)
    assert found.restores == 2 and found.time_to_restore_seconds == 23 * 3600


def test_a_quiet_window_has_nothing_to_measure():
    found = keys(*history(), datetime(2026, 12, 1), datetime(2026, 12, 8))
    assert (found.deployments, found.deployments_per_day, found.per_day) == (0, 0.0, (0,) * 7)
    assert found.lead_time_seconds is None and found.change_failure_rate is None
    assert found.time_to_restore_seconds is None


def test_a_failure_not_yet_restored_is_not_counted():
    live = datetime(2026, 11, 2, 10)
    found = keys([Rollout(live, live + HOUR)], [live + 2 * HOUR], START, END)
    assert found.restores == 0 and found.time_to_restore_seconds is None
