"""Release history rules: what is current, what a rollback restores."""

from __future__ import annotations

from dataclasses import replace

import pytest

from steps.release import Release, current, history, new_release_id, rollback_source
from steps.runtime.errors import Refused, UsageError


def rel(n: int, status: str = "succeeded", image: str | None = None, **kw) -> Release:
    return Release(id=f"r{n}", project="p", environment="e", target="docker",
                   images={"web": image or f"app@sha256:{n}"}, template_hash=f"t{n}",
                   created=f"2026-01-01T00:00:0{n}Z", status=status, **kw)


def test_current_is_the_newest_release_that_succeeded():
    assert current([rel(1), rel(2), rel(3, "failed")]).id == "r2"
    assert current([rel(1, "failed")]) is None


@pytest.mark.parametrize(("records", "to", "expected"), [
    ([rel(1), rel(2)], None, "r1"),
    ([rel(1), rel(2, "failed"), rel(3)], None, "r1"),       # a failed release is never a target
    ([rel(1), rel(2), rel(3, "failed")], None, "r1"),       # current is r2 (r3 failed)
    # r4 rolled r3 back to r2: r3 is "rolled-back", r2 runs now, so the next rollback goes to r1
    ([rel(1), rel(2), rel(3), Release(**{**rel(2).__dict__, "id": "r4", "kind": "rollback",
                                          "previous": "r3", "rollback_of": "r2",
                                          "created": "2026-01-01T00:00:04Z"})], None, "r1"),
    ([rel(1), rel(2), rel(3)], "r1", "r1"),
])
def test_rollback_source(records, to, expected):
    assert rollback_source(records, to).id == expected


def test_rollback_refuses_without_an_earlier_success():
    with pytest.raises(Refused, match="no release before r1 succeeded"):
        rollback_source([rel(1)])
    with pytest.raises(Refused, match="nothing to roll back"):
        rollback_source([])


def test_rollback_to_a_failed_or_unknown_release_is_refused():
    with pytest.raises(Refused, match="a failed release is never a rollback target"):
        rollback_source([rel(1), rel(2, "failed"), rel(3)], "r2")
    with pytest.raises(UsageError, match="no release 'r9'"):
        rollback_source([rel(1), rel(2)], "r9")


def test_history_marks_releases_a_rollback_left():
    records = [rel(1), rel(2), rel(3, kind="rollback", previous="r2", rollback_of="r1")]
    assert [(r.id, r.status) for r in history(records)] == [
        ("r3", "succeeded"), ("r2", "rolled-back"), ("r1", "succeeded")]


def test_record_round_trips_through_json():
    release = rel(1, spec={"model": {"services": {}}}, config_hashes={"config:a": "sha256:x"})
    assert Release.from_json(release.to_json()) == release
    assert "spec" not in release.summary()


def test_release_ids_sort_by_time():
    from datetime import UTC, datetime, timedelta

    t = datetime(2026, 1, 1, tzinfo=UTC)
    assert new_release_id(t) < new_release_id(t + timedelta(milliseconds=1))


def test_the_services_release_picks_its_newest_record_else_the_image():
    def made(n, release_id=None, status="succeeded"):
        return replace(rel(n, status), release_id=release_id, image=f"app@sha256:{n % 2}")
    records = [made(1, 7), made(2, 8), made(3, 7), made(4, 7, "failed"), made(5, 9)]
    assert rollback_source(records, release_id=7).id == "r3"
    older = [made(1), made(2), made(3)]  # records from before release ids
    assert rollback_source(older, release_id=7, image="app@sha256:0").id == "r2"
    with pytest.raises(Refused, match="no record of release 6"):
        rollback_source(records, release_id=6)
