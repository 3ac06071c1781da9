"""What the web pages show: the matrix of projects x environments, and one release's page.

The same facts and rules as the API: the gate's reasons come from services.gate, who may
approve from services.approvals, the project scope from lookups.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from ..db.models import Environment, Project, Release, utcnow
from ..domain.actor import Actor
from ..domain.states import IN_FLIGHT
from ..store import approvals as approval_store
from ..store import audit, overview, projects, rollouts, scans
from . import approvals, gate, lookups
from .projects import policy_of

PAGE_SIZE = 50
_IN_FLIGHT = {s.value for s in IN_FLIGHT}


@dataclass
class Candidate:
    """The release waiting to enter an environment, and why it may not yet (one line)."""

    release: Release
    allowed: bool
    reasons: str


@dataclass
class Cell:
    """One project's environment: what runs there, in what state, and what waits."""

    environment: Environment
    live: Any = None  # (Rollout, Release, Deployment) row
    states: list[str] = field(default_factory=list)
    candidate: Candidate | None = None


@dataclass
class Matrix:
    """A page of the overview: the rows, the environment columns, and the paging."""

    columns: list[str]
    rows: list[tuple[Project, dict[str, Cell]]]
    total: int
    page: int
    pages: int


def matrix(session: Session, actor: Actor, *, project: str | None = None,
           environment: str | None = None, page: int = 1) -> Matrix:
    """Projects (a page of them) x environments, filtered by a project path fragment and an
    environment name; a project-scoped token sees its own project."""
    page = max(page, 1)
    found, total = overview.projects(session, path=project, scope=actor.project,
                                     offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
    envs = overview.environments(session, [p.id for p in found])
    if environment:
        envs = [e for e in envs if e.name == environment]
    env_ids = [e.id for e in envs]
    live = overview.live(session, env_ids)
    deployed = overview.latest_deployments(session, env_ids)
    promoted = overview.latest_promotions(session, env_ids)
    stops = overview.stopped(session)
    all_envs = overview.environments(session, [p.id for p in found]) if environment else envs
    by_position = {(e.project_id, e.position): e for e in all_envs}
    now = utcnow()
    in_flight = overview.releases(session, [p.release_id for p in promoted.values()
                                            if p.state in _IN_FLIGHT])
    cells: dict[int, dict[str, Cell]] = {p.id: {} for p in found}
    waiting: dict[int, Release] = {}
    for env in envs:
        cell = Cell(env, live.get(env.id))
        cell.states = _states(env, cell.live, deployed.get(env.id), promoted.get(env.id),
                              env.name in stops, now)
        previous = by_position.get((env.project_id, env.position - 1))
        release = _candidate(env, cell.live, promoted.get(env.id), in_flight,
                             live.get(previous.id) if previous else None)
        if release is not None:
            waiting[env.id] = release
        cells[env.project_id][env.name] = cell
    # the candidates' gate answers together: the same rule as the gate, in a few queries
    decisions = gate.decide_many(session, [(r.id, env_id) for env_id, r in waiting.items()],
                                 now)
    for env in envs:
        if (release := waiting.get(env.id)) is not None:
            decision = decisions[release.id, env.id]
            line = "; ".join(r.message for r in decision.reasons)
            cells[env.project_id][env.name].candidate = Candidate(
                release, decision.allowed, line or "may go in now")
    columns = [environment] if environment else overview.environment_names(session)
    return Matrix(columns, [(p, cells[p.id]) for p in found], total, page,
                  max(1, -(-total // PAGE_SIZE)))


def environment_names(session: Session) -> list[str]:
    """Every environment name in use (the overview's filter)."""
    return overview.environment_names(session)


def _states(env: Environment, live: Any, deployment: Any, promotion: Any, stopped: bool,
            now: datetime) -> list[str]:
    states = []
    if promotion is not None and promotion.state in _IN_FLIGHT:
        states.append("deploying")
    if live is not None and live.Rollout.verified_at is not None:
        states.append("verified")
    if deployment is not None and deployment.state == "failed":
        states.append("failed")
    if env.hold_at is not None:
        states.append("held")
    if live is not None and live.Release.revoked_at is not None:
        states.append("revoked")
    if stopped or any(w.covers(now) for w in policy_of(env).freeze_windows):
        states.append("frozen")
    return states


def _candidate(env: Environment, live: Any, promotion: Any, in_flight: dict[int, Release],
               previous_live: Any) -> Release | None:
    """The release in flight into the environment, else the one verified in the environment
    before it that is not live here yet."""
    if promotion is not None and promotion.state in _IN_FLIGHT:
        return in_flight.get(promotion.release_id)
    if previous_live is not None and previous_live.Rollout.verified_at is not None and (
            live is None or live.Release.id != previous_live.Release.id):
        return previous_live.Release
    return None


@dataclass
class EnvironmentView:
    """One environment as the release page shows it."""

    environment: Environment
    allowed: bool
    reasons: list[Any]
    approvals: list[Any]
    path: list[Any]  # the release's rollouts there, newest first
    approve_refusal: str | None  # why this person may not approve it here, if they may not
    decide_refusal: str | None  # why this person may not approve or reject at all


@dataclass
class ReleasePage:
    """A release with its members (and their scans), its path through the environments and
    its audit entries."""

    release: Release
    project: Project
    members: list[tuple[Any, Any]]  # (member, its image's latest scan)
    environments: list[EnvironmentView]
    audit: list[Any]


def release_page(session: Session, actor: Actor, release_id: int) -> ReleasePage:
    """Everything the release's page shows, within the actor's project scope."""
    release = lookups.release_by_id(session, release_id)
    lookups.check_release_scope(session, actor, release)
    views = []
    envs = projects.environments(session, release.project_id)
    decisions = gate.decide_many(session, [(release.id, env.id) for env in envs])
    for env in envs:
        decision = decisions[release.id, env.id]
        views.append(EnvironmentView(
            env, decision.allowed, list(decision.reasons),
            approval_store.standing(session, release.id, env.id),
            rollouts.of_release(session, env.id, release.id),
            approvals.refusal(session, actor, release, env, "approve"),
            approvals.refusal(session, actor, release, env, "reject")))
    members = [(m, scans.latest(session, m.image_id)) for m in release.members]
    entries = audit.listing(session, {"subject_type": "release",
                                      "subject_id": str(release.id)})
    return ReleasePage(release, session.get(Project, release.project_id), members, views,
                       entries.page(0, 200))
