"""What the web pages show: the matrix of projects x environments, and one release's page.

The same facts and rules as the API: the gate's reasons come from services.gate, who may
approve from services.approvals, the project scope from lookups.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from ..db.models import EmergencyStop, Environment, Project, Release, utcnow
from ..domain.actor import Actor
from ..domain.states import IN_FLIGHT
from ..store import approvals as approval_store
from ..store import audit, gate_facts, overview, projects, rollouts, scans, stops
from . import approvals, gate, lookups

PAGE_SIZE = 50
_IN_FLIGHT = {s.value for s in IN_FLIGHT}


@dataclass(frozen=True)
class Shown:
    """A release as a cell names it: a link to its page, labelled by its first tag or its
    digest."""

    id: int
    tags: list[str] | None
    digest: str


@dataclass(frozen=True)
class Live:
    """What runs in an environment: the release, its commit, since when and who deployed it
    (None when no deployment report put it there)."""

    release: Shown
    commit_sha: str | None
    at: datetime
    verified_at: datetime | None
    by: str | None


@dataclass
class Candidate:
    """The release waiting to enter an environment, and why it may not yet (one line)."""

    release: Shown
    allowed: bool
    reasons: str


@dataclass
class Cell:
    """One project's environment: what runs there, in what state, and what waits."""

    live: Live | None = None
    states: list[str] = field(default_factory=list)
    candidate: Candidate | None = None


@dataclass
class Matrix:
    """A page of the overview: the rows, the environment columns, the paging, every
    environment name in use (the filter) and the emergency stops in force."""

    columns: list[str]
    rows: list[tuple[Project, dict[str, Cell]]]
    total: int
    page: int
    pages: int
    environments: list[str]
    stops: list[EmergencyStop]


def matrix(session: Session, actor: Actor, *, project: str | None = None,
           environment: str | None = None, page: int = 1) -> Matrix:
    """Projects (a page of them) x environments, filtered by a project path fragment and an
    environment name; a project-scoped token sees its own project."""
    page = max(page, 1)
    found, total = overview.projects(session, path=project, scope=actor.project,
                                     offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
    # every environment of the page's projects: a cell's candidate comes from the one before
    envs = overview.cells(session, [p.id for p in found])
    active = stops.active(session)
    stopped = {stop.environment for stop in active}
    live = {env.id: _live(env) for env in envs}
    by_position = {(env.project_id, env.position): env.id for env in envs}
    now = utcnow()
    cells: dict[int, dict[str, Cell]] = {p.id: {} for p in found}
    waiting: dict[int, Shown] = {}
    for env in envs:
        if environment and env.name != environment:
            continue
        cell = Cell(live[env.id], _states(env, env.name in stopped, now))
        previous = by_position.get((env.project_id, env.position - 1))
        release = _candidate(env, cell.live, live.get(previous) if previous else None)
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
    names = overview.environment_names(session)
    return Matrix([environment] if environment else names, [(p, cells[p.id]) for p in found],
                  total, page, max(1, -(-total // PAGE_SIZE)), names, active)


def environment_names(session: Session) -> list[str]:
    """Every environment name in use (the overview's filter)."""
    return overview.environment_names(session)


def _live(env: Any) -> Live | None:
    if env.live_release_id is None:
        return None
    return Live(Shown(env.live_release_id, env.live_tags, env.live_digest),
                env.live_commit_sha, env.live_at, env.live_verified_at, env.live_by)


def _states(env: Any, stopped: bool, now: datetime) -> list[str]:
    states = []
    if env.promotion_state in _IN_FLIGHT:
        states.append("deploying")
    if env.live_verified_at is not None:
        states.append("verified")
    if env.deployment_state == "failed":
        states.append("failed")
    if env.hold_at is not None:
        states.append("held")
    if env.live_revoked_at is not None:
        states.append("revoked")
    # the stored policy's text is parsed once per process, not once per cell
    if stopped or any(w.covers(now) for w in gate_facts.parse_policy(env.policy).freeze_windows):
        states.append("frozen")
    return states


def _candidate(env: Any, live: Live | None, previous_live: Live | None) -> Shown | None:
    """The release in flight into the environment, else the one verified in the environment
    before it that is not live here yet."""
    if env.promotion_state in _IN_FLIGHT:
        return Shown(env.promoted_id, env.promoted_tags, env.promoted_digest)
    if previous_live is not None and previous_live.verified_at is not None and (
            live is None or live.release.id != previous_live.release.id):
        return previous_live.release
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
