"""DORA metrics per project and environment over a window, from the ledger (domain.dora
computes them; this reads the facts, within the reader's project scope)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from ..db.models import utcnow
from ..domain.actor import Actor
from ..domain.dora import Keys, Rollout, keys
from ..store import dora, overview

MAX_PROJECTS = 1000  # one report; more projects than that: filter by project


@dataclass(frozen=True)
class EnvironmentKeys:
    """One project's environment and its four keys over the window."""

    project: str
    environment: str
    start: datetime
    end: datetime
    keys: Keys


def report(session: Session, actor: Actor, *, project: str | None = None,
           environment: str | None = None, days: int = 30,
           now: datetime | None = None) -> list[EnvironmentKeys]:
    """The keys of every environment of the projects (a path fragment) over the last `days`."""
    end = now or utcnow()
    start = end - timedelta(days=days)
    found, _ = overview.projects(session, path=project, scope=actor.project, limit=MAX_PROJECTS)
    paths = {p.id: p.path for p in found}
    envs = [e for e in overview.environments(session, list(paths))
            if environment in (None, "", e.name)]
    env_ids = [e.id for e in envs]
    by_env: dict[int, list[Rollout]] = defaultdict(list)
    for row in dora.rollouts(session, env_ids, start):
        by_env[row.environment_id].append(Rollout(row.deployed_at, row.verified_at,
                                                  row.commit_time, bool(row.failed),
                                                  bool(row.rollback)))
    failed: dict[int, list[datetime]] = defaultdict(list)
    for row in dora.failures(session, env_ids, start):
        failed[row.environment_id].append(row.at)
    return [EnvironmentKeys(paths[e.project_id], e.name, start, end,
                            keys(by_env[e.id], failed[e.id], start, end)) for e in envs]
