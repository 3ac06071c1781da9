"""What the overview page reads: a page of projects with, per environment, the live rollout,
the latest deployment and promotion, in a handful of queries however many projects."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, lazyload

from ..db.models import Deployment, EmergencyStop, Environment, Project, Promotion, Release, Rollout


def projects(session: Session, *, path: str | None = None, scope: str | None = None,
             offset: int = 0, limit: int = 50) -> tuple[list[Project], int]:
    """A page of projects by path (filtered by a path fragment, narrowed to a scope), and how
    many match."""
    stmt = select(Project)
    if scope is not None:
        stmt = stmt.where(Project.path == scope)
    if path:
        stmt = stmt.where(Project.path.contains(path, autoescape=True))
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = list(session.scalars(stmt.order_by(Project.path).offset(offset).limit(limit)))
    return rows, total


def environments(session: Session, project_ids: Sequence[int]) -> list[Environment]:
    """The environments of these projects, each project's in promotion order."""
    return list(session.scalars(select(Environment).where(Environment.project_id.in_(project_ids))
                                .order_by(Environment.project_id, Environment.position)))


def environment_names(session: Session) -> list[str]:
    """Every environment name in use, in the order projects usually have them."""
    rows = session.execute(select(Environment.name, func.min(Environment.position))
                           .group_by(Environment.name)
                           .order_by(func.min(Environment.position), Environment.name))
    return [name for name, _ in rows]


def live(session: Session, env_ids: Sequence[int]) -> dict[int, Any]:
    """Per environment: its live rollout (the latest not rolled back) with its release and the
    deployment that put it there."""
    latest = _latest(Rollout, env_ids, Rollout.rolled_back_at.is_(None))
    rows = session.execute(
        select(Rollout, Release, Deployment).join(Release, Release.id == Rollout.release_id)
        .outerjoin(Deployment, Deployment.id == Rollout.deployment_id)
        .where(Rollout.id.in_(latest)).options(lazyload(Release.members)))  # not shown
    return {row.Rollout.environment_id: row for row in rows}


def latest_deployments(session: Session, env_ids: Sequence[int]) -> dict[int, Deployment]:
    """Per environment: its latest deployment report, whichever image."""
    latest = _latest(Deployment, env_ids)
    return {d.environment_id: d
            for d in session.scalars(select(Deployment).where(Deployment.id.in_(latest)))}


def latest_promotions(session: Session, env_ids: Sequence[int]) -> dict[int, Promotion]:
    """Per environment: its latest promotion, whichever image."""
    latest = _latest(Promotion, env_ids)
    return {p.environment_id: p
            for p in session.scalars(select(Promotion).where(Promotion.id.in_(latest)))}


def _latest(model: Any, env_ids: Sequence[int], *where: Any) -> Any:
    """The id of each environment's newest row of `model` (matching `where`): one step down
    the (environment_id, id) index per environment, not a scan of its whole history."""
    newest = (select(model.id).where(model.environment_id == Environment.id, *where)
              .order_by(model.id.desc()).limit(1).correlate(Environment).scalar_subquery())
    return select(newest).where(Environment.id.in_(env_ids))


def releases(session: Session, ids: Sequence[int]) -> dict[int, Release]:
    """These releases by id, in one query (their members are not shown)."""
    if not ids:
        return {}
    rows = session.scalars(select(Release).where(Release.id.in_(set(ids)))
                           .options(lazyload(Release.members)))
    return {release.id: release for release in rows}


def stopped(session: Session) -> dict[str, EmergencyStop]:
    """Emergency stops in force, by environment name."""
    rows = session.scalars(select(EmergencyStop).where(EmergencyStop.lifted_at.is_(None)))
    return {stop.environment: stop for stop in rows}
