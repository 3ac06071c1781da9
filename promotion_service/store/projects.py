"""Projects and their ordered environments."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..domain.actor import Actor
from ..domain.policy import EnvironmentPolicy
from ..errors import Forbidden, NotFound
from ..models import Environment, Project
from ..policy_file import PolicySet
from . import audit


def ensure_project(session: Session, actor: Actor, path: str, policies: PolicySet,
                   gitlab_id: int | None = None) -> Project:
    """The project, created with its environments from the policy file on first sight."""
    check_scope(actor, path)
    project = session.scalar(select(Project).where(Project.path == path))
    if project is not None:
        if gitlab_id is not None and project.gitlab_id is None:
            project.gitlab_id = gitlab_id
        return project
    spec = policies.for_project(path)
    try:
        with session.begin_nested():
            project = Project(path=path, gitlab_id=gitlab_id or spec.gitlab_id)
            session.add(project)
            session.flush()
            for position, (name, policy) in enumerate(spec.environments):
                session.add(Environment(project_id=project.id, name=name, position=position,
                                        policy=policy.to_dict()))
            session.flush()
    except IntegrityError:  # created by a concurrent request
        return session.scalars(select(Project).where(Project.path == path)).one()
    audit.append(session, actor, "project.created", "project", project.id,
                 after={"path": path, "environments": [n for n, _ in spec.environments]})
    return project


def check_scope(actor: Actor, project_path: str) -> None:
    """A project-scoped token touches only its project."""
    if not actor.may_act_on(project_path):
        raise Forbidden(f"this token is limited to project {actor.project!r}, "
                        f"not {project_path!r}")


def get_project(session: Session, project_id: int) -> Project:
    """The project or 404."""
    project = session.get(Project, project_id)
    if project is None:
        raise NotFound(f"no project with id {project_id}")
    return project


def environments(session: Session, project_id: int) -> list[Environment]:
    """The project's environments, in promotion order."""
    return list(session.scalars(select(Environment).where(Environment.project_id == project_id)
                                .order_by(Environment.position)))


def find_environment(session: Session, project_id: int, name: str) -> Environment | None:
    """One environment of the project by name, if it has one."""
    return session.scalar(select(Environment).where(Environment.project_id == project_id,
                                                    Environment.name == name))


def get_environment(session: Session, project_id: int, name: str) -> Environment:
    """One environment of the project, or 404 naming the ones that exist."""
    env = find_environment(session, project_id, name)
    if env is None:
        names = ", ".join(e.name for e in environments(session, project_id)) or "none"
        raise NotFound(f"environment {name!r} does not exist in this project (it has: {names})")
    return env


def neighbour(session: Session, env: Environment, step: int) -> Environment | None:
    """The environment before (step=-1) or after (step=1) this one."""
    return session.scalar(select(Environment).where(
        Environment.project_id == env.project_id, Environment.position == env.position + step))


def policy_of(env: Environment) -> EnvironmentPolicy:
    """The environment's stored policy as a domain object."""
    return EnvironmentPolicy.from_dict(env.policy, f"environment {env.name}")


def set_policy(session: Session, actor: Actor, env: Environment,
               policy: EnvironmentPolicy) -> Environment:
    """Replace an environment's policy (audited)."""
    before = dict(env.policy)
    env.policy = policy.to_dict()
    session.flush()
    audit.append(session, actor, "environment.policy_changed", "environment", env.id,
                 before=before, after=env.policy)
    return env
