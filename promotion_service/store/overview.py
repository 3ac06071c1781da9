"""What the overview page reads: a page of projects with, per environment, the live rollout,
the latest deployment and promotion, in a handful of queries however many projects."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, Select, Text, bindparam, cast, func, select
from sqlalchemy.orm import Session, aliased

from ..db.models import Deployment, Environment, Project, Promotion, Release, Rollout


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


def _newest(model: Any, *where: Any) -> Any:
    """The id of the environment's newest row of `model` (matching `where`): one step down
    the (environment_id, id) index, not a scan of its whole history."""
    return (select(model.id).where(model.environment_id == Environment.id, *where)
            .order_by(model.id.desc()).limit(1).correlate(Environment).scalar_subquery())


def _cells_statement() -> Select[Any]:
    live, shown, by = aliased(Rollout), aliased(Release), aliased(Deployment)
    deployed, promoted, promoted_release = aliased(Deployment), aliased(Promotion), aliased(Release)
    return (
        select(Environment.id, Environment.project_id, Environment.name, Environment.position,
               cast(Environment.policy, Text).label("policy"), Environment.hold_at,
               shown.id.label("live_release_id"), shown.tags.label("live_tags"),
               shown.digest.label("live_digest"), shown.commit_sha.label("live_commit_sha"),
               shown.revoked_at.label("live_revoked_at"), live.created_at.label("live_at"),
               live.verified_at.label("live_verified_at"), by.actor.label("live_by"),
               deployed.state.label("deployment_state"),
               promoted.state.label("promotion_state"),
               promoted_release.id.label("promoted_id"),
               promoted_release.tags.label("promoted_tags"),
               promoted_release.digest.label("promoted_digest"))
        .select_from(Environment)
        .outerjoin(live, live.id == _newest(Rollout, Rollout.rolled_back_at.is_(None)))
        .outerjoin(shown, shown.id == live.release_id)
        .outerjoin(by, by.id == live.deployment_id)
        .outerjoin(deployed, deployed.id == _newest(Deployment))
        .outerjoin(promoted, promoted.id == _newest(Promotion))
        .outerjoin(promoted_release, promoted_release.id == promoted.release_id)
        .where(Environment.project_id.in_(bindparam("project_ids", expanding=True)))
        .order_by(Environment.project_id, Environment.position))


# built once: composing it (six aliases) costs more than running it
_CELLS = _cells_statement()


def cells(session: Session, project_ids: Sequence[int]) -> list[Row[Any]]:
    """One row per environment of these projects (each project's in promotion order): its
    name, position, stored policy (as text) and hold; its live rollout (the latest not rolled
    back) with its release and the deployment that put it there (live_*); its latest
    deployment's state; its latest promotion with that promotion's release (promoted_*).

    One statement of plain columns, each newest row found by one step down the
    (environment_id, id) index: a page's 200 cells are not worth loading as ORM entities.
    """
    return list(session.execute(_CELLS, {"project_ids": list(project_ids)}))
