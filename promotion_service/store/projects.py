"""Projects and their ordered environments."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..db.listing import Listing
from ..db.models import Environment, Project


def by_path(session: Session, path: str) -> Project | None:
    """The project with this path, if any."""
    return session.scalar(select(Project).where(Project.path == path))


def get(session: Session, project_id: int) -> Project | None:
    """The project with this id, if any."""
    return session.get(Project, project_id)


def by_gitlab_project(session: Session, gitlab_id: int, path: str = "") -> Project | None:
    """The project for a GitLab project id (or its full path)."""
    clauses = [Project.gitlab_id == gitlab_id]
    if path:
        clauses.append(Project.path == path)
    return session.scalars(select(Project).where(or_(*clauses)).order_by(Project.id)).first()


def add(session: Session, path: str, gitlab_id: int | None,
        environments: Sequence[tuple[str, dict[str, Any]]]) -> Project | None:
    """A new project with its (name, policy) environments in order; None if it exists."""
    try:
        with session.begin_nested():
            project = Project(path=path, gitlab_id=gitlab_id)
            session.add(project)
            session.flush()
            for position, (name, policy) in enumerate(environments):
                session.add(Environment(project_id=project.id, name=name, position=position,
                                        policy=policy))
            session.flush()
    except IntegrityError:  # created by a concurrent request
        return None
    return project


def path_of_environment(session: Session, environment_id: int) -> str | None:
    """The path of the project an environment belongs to."""
    return session.scalar(select(Project.path).join(Environment, Environment.project_id
                                                    == Project.id)
                          .where(Environment.id == environment_id))


def listing(session: Session, path: str | None = None) -> Listing:
    """All projects (or the one with this path), oldest first."""
    stmt = select(Project)
    if path is not None:
        stmt = stmt.where(Project.path == path)
    return Listing(session, stmt, Project.id, descending=False)


def environments(session: Session, project_id: int) -> list[Environment]:
    """The project's environments, in promotion order."""
    return list(session.scalars(select(Environment).where(Environment.project_id == project_id)
                                .order_by(Environment.position)))


def environment_names(conn: Session | Connection, project_id: int) -> list[str]:
    """The names of the project's environments, in promotion order (Core or ORM)."""
    return list(conn.execute(select(Environment.name).where(Environment.project_id == project_id)
                             .order_by(Environment.position)).scalars())


def environment(session: Session, project_id: int, name: str) -> Environment | None:
    """One environment of the project by name, if it has one."""
    return session.scalar(select(Environment).where(Environment.project_id == project_id,
                                                    Environment.name == name))


def neighbour(session: Session, env: Environment, step: int) -> Environment | None:
    """The environment before (step=-1) or after (step=1) this one."""
    return session.scalar(select(Environment).where(
        Environment.project_id == env.project_id, Environment.position == env.position + step))


def first_environment(session: Session, project_id: int) -> Environment | None:
    """The environment images enter first."""
    return session.scalar(select(Environment).where(Environment.project_id == project_id)
                          .order_by(Environment.position).limit(1))


def later_environments_without_hold(session: Session) -> list[Environment]:
    """Environments images are promoted into (not the first), with no hold, in every project."""
    return list(session.scalars(select(Environment).where(Environment.position > 0,
                                                          Environment.hold_at.is_(None))))


def later_environments_in_gitlab(session: Session) -> list[tuple[Environment, int]]:
    """(environment, GitLab project id) of every later environment of a project in GitLab."""
    rows = session.execute(
        select(Environment, Project.gitlab_id).join(Project, Project.id == Environment.project_id)
        .where(Environment.position > 0, Project.gitlab_id.is_not(None))).all()
    return [(env, gitlab_id) for env, gitlab_id in rows]
