"""Projects: created on first sight with the policy file's environments; policies changed."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from ..db import write_transaction
from ..db.listing import Extended, Listing
from ..db.models import Environment, Project, utcnow
from ..domain.actor import Actor
from ..domain.policy import EnvironmentPolicy
from ..domain.policy_change import loosenings
from ..errors import Conflict, Forbidden
from ..policy_file import PolicySet
from ..store import audit, projects, rollouts
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
    if actor.pipeline is not None and not spec.listed:
        raise Forbidden(f"project {path} is not known to the promotion service: an admin "
                        "creates it (POST /api/v1/projects) or lists it under projects: in the "
                        "policy file; a CI job's ID token cannot create projects")
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


def get(session: Session, actor: Actor, project_id: int) -> Extended:
    """A project with its environments, policies and holds (404 if there is none)."""
    project = lookups.project(session, project_id)
    lookups.check_scope(actor, project.path)
    return detail(session, project)


def detail(session: Session, project: Project) -> Extended:
    """The project with its environments in order."""
    return Extended(project, environments=projects.environments(session, project.id))


def listing(session: Session, actor: Actor) -> Listing:
    """All projects (a project-scoped token sees its own)."""
    return projects.listing(session, actor.project)


def set_policy(session: Session, actor: Actor, project_id: int, name: str,
               policy: dict[str, Any], *, reason: str, loosen: bool = False) -> Environment:
    """Replace an environment's policy (the whole of it), audited with the reason.

    A change that lets images in more easily (fewer approvals, no four-eyes, a higher scan
    limit, ...) is made only when the request says `loosen`, and is audited as such.
    """
    with write_transaction(session):
        env = lookups.scoped_environment(session, actor, project_id, name)
        before = dict(env.policy)
        new = EnvironmentPolicy.from_dict(policy)
        looser = loosenings(policy_of(env), new, utcnow())
        if looser and not loosen:
            raise Conflict(f"this change loosens {env.name}'s policy ({'; '.join(looser)}); "
                           "send it with \"loosen\": true to loosen it on purpose (audited)")
        env.policy = new.to_dict()
        session.flush()
        action = "environment.policy_loosened" if looser else "environment.policy_changed"
        audit.append(session, actor, action, "environment", env.id, before=before,
                     after=env.policy | {"reason": reason, "loosened": looser})
    return env


def releases_of(session: Session, actor: Actor, project_id: int, name: str) -> Listing:
    """Rollouts in the environment, newest first (the first not rolled back is live)."""
    env = lookups.scoped_environment(session, actor, project_id, name)
    return rollouts.listing(session, env.id)
