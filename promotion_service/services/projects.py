"""Projects: created on first sight with the policy file's environments; policies changed."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from ..db import write_transaction
from ..db.listing import Extended, Listing
from ..db.models import Environment, Project
from ..domain.actor import Actor
from ..domain.policy import EnvironmentPolicy
from ..policy_file import PolicySet
from ..store import audit, projects, releases
from . import lookups


def policy_of(env: Environment) -> EnvironmentPolicy:
    """The environment's stored policy as a domain object."""
    return EnvironmentPolicy.from_dict(env.policy, f"environment {env.name}")


def ensure_project(session: Session, actor: Actor, path: str, policies: PolicySet,
                   gitlab_id: int | None = None) -> Project:
    """The project, created with its environments from the policy file on first sight.

    Runs in the caller's write transaction.
    """
    lookups.check_scope(actor, path)
    project = projects.by_path(session, path)
    if project is not None:
        if gitlab_id is not None and project.gitlab_id is None:
            project.gitlab_id = gitlab_id
        return project
    spec = policies.for_project(path)
    project = projects.add(session, path, gitlab_id or spec.gitlab_id,
                           [(name, policy.to_dict()) for name, policy in spec.environments])
    if project is None:  # created by a concurrent request
        return projects.by_path(session, path)  # type: ignore[return-value]
    audit.append(session, actor, "project.created", "project", project.id,
                 after={"path": path, "environments": [n for n, _ in spec.environments]})
    return project


def create(session: Session, actor: Actor, policies: PolicySet, path: str,
           gitlab_id: int | None = None) -> Extended:
    """Create a project (or find it); it comes back with its environments."""
    with write_transaction(session):
        project = ensure_project(session, actor, path, policies, gitlab_id)
    return detail(session, project)


def get(session: Session, project_id: int) -> Extended:
    """A project with its environments, policies and holds (404 if there is none)."""
    return detail(session, lookups.project(session, project_id))


def detail(session: Session, project: Project) -> Extended:
    """The project with its environments in order."""
    return Extended(project, environments=projects.environments(session, project.id))


def listing(session: Session) -> Listing:
    """All projects."""
    return projects.listing(session)


def set_policy(session: Session, actor: Actor, project_id: int, name: str,
               policy: dict[str, Any]) -> Environment:
    """Replace an environment's policy (audited)."""
    with write_transaction(session):
        env = lookups.scoped_environment(session, actor, project_id, name)
        before = dict(env.policy)
        env.policy = EnvironmentPolicy.from_dict(policy).to_dict()
        session.flush()
        audit.append(session, actor, "environment.policy_changed", "environment", env.id,
                     before=before, after=env.policy)
    return env


def releases_of(session: Session, project_id: int, name: str) -> Listing:
    """Releases in the environment, newest first (the first not rolled back is live)."""
    env = lookups.environment(session, project_id, name)
    return releases.listing(session, env.id)
