"""DORA's four keys for one environment over a window, from what the ledger recorded.

- deployment frequency: releases that went live in the window, per day;
- lead time for changes: commit time (CI_COMMIT_TIMESTAMP, recorded at registration) to
  verified in the environment, for releases verified in the window (median);
- change failure rate: of the releases that went live in the window, the share followed by a
  rollback, a failed verification or a revocation;
- time to restore: from a failed deployment or a rollback in the window to the next release
  serving verified there (median; a failure not yet restored is not counted).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Rollout:
    """A release that went live in the environment, and what happened to it after."""

    deployed_at: datetime
    verified_at: datetime | None = None
    commit_time: datetime | None = None
    failed: bool = False  # rolled back, failed its verification, or revoked
    rollback: bool = False  # it restored an earlier release: no change, no lead time

    @property
    def serving_at(self) -> datetime | None:
        """When it went live verified (a restored release keeps its earlier verification)."""
        return None if self.verified_at is None else max(self.deployed_at, self.verified_at)


@dataclass(frozen=True)
class Keys:
    """The four keys, and the figures they come from (None: nothing to measure)."""

    days: float
    deployments: int
    deployments_per_day: float
    lead_time_seconds: float | None
    failed_deployments: int
    change_failure_rate: float | None
    restores: int
    time_to_restore_seconds: float | None
    per_day: tuple[int, ...]  # releases that went live on each day of the window, oldest first


def keys(rollouts: Sequence[Rollout], failures: Sequence[datetime], start: datetime,
         end: datetime) -> Keys:
    """The four keys of one environment over [start, end)."""
    days = (end - start).total_seconds() / 86400
    live = [r for r in rollouts if start <= r.deployed_at < end]
    lead = [(r.verified_at - r.commit_time).total_seconds() for r in rollouts
            if r.verified_at is not None and r.commit_time is not None and not r.rollback
            and start <= r.verified_at < end]
    failed = sum(1 for r in live if r.failed)
    verified = sorted(r.serving_at for r in rollouts if r.serving_at is not None)
    restored = []
    for failure in (f for f in failures if start <= f < end):
        after = next((v for v in verified if v > failure), None)
        if after is not None:
            restored.append((after - failure).total_seconds())
    per_day = [0] * max(1, int(-(-days // 1)))
    for r in live:
        per_day[min(len(per_day) - 1, int((r.deployed_at - start) / timedelta(days=1)))] += 1
    return Keys(
        days=days, deployments=len(live),
        deployments_per_day=len(live) / days if days > 0 else 0.0,
        lead_time_seconds=statistics.median(lead) if lead else None,
        failed_deployments=failed,
        change_failure_rate=failed / len(live) if live else None,
        restores=len(restored),
        time_to_restore_seconds=statistics.median(restored) if restored else None,
        per_day=tuple(per_day))
