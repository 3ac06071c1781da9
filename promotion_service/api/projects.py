"""/api/v1/projects: projects, environments and policies, releases, holds, rollback."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint
from sqlalchemy import select

from ..auth import ADMINS, MANAGERS, current_actor, require_roles, require_token
from ..db import get_session
from ..domain.policy import EnvironmentPolicy
from ..models import Environment, Project, Release
from ..store import projects, releases
from .common import Extended, SelectPage, policies
from .schemas import (
    EnvironmentOut,
    PolicyIn,
    ProjectDetail,
    ProjectIn,
    ProjectOut,
    PromotionOut,
    ReleaseOut,
    RollbackIn,
)

blp = Blueprint("projects", __name__, description="Projects, environments, releases, rollback")


@blp.route("", methods=["POST"])
@require_roles(*ADMINS)
@blp.arguments(ProjectIn())
@blp.response(201, ProjectDetail)
def create(data: dict[str, Any]) -> Any:
    """Create a project; its environments come from the policy file."""
    session = get_session()
    project = projects.ensure_project(session, current_actor(), data["path"], policies(),
                                      data.get("gitlab_id"))
    session.commit()
    return _detail(project)


@blp.route("", methods=["GET"])
@require_token
@blp.response(200, ProjectOut(many=True))
@blp.paginate(SelectPage)
def list_projects() -> Any:
    """All projects."""
    return select(Project).order_by(Project.id)


@blp.route("/<int:project_id>", methods=["GET"])
@require_token
@blp.response(200, ProjectDetail)
def show(project_id: int) -> Any:
    """A project with its environments, policies and holds."""
    return _detail(projects.get_project(get_session(), project_id))


@blp.route("/<int:project_id>/environments/<name>/policy", methods=["PUT"])
@require_roles(*ADMINS)
@blp.arguments(PolicyIn())
@blp.response(200, EnvironmentOut)
def set_policy(data: dict[str, Any], project_id: int, name: str) -> Any:
    """Replace an environment's policy."""
    session = get_session()
    env = _scoped_environment(project_id, name)
    projects.set_policy(session, current_actor(), env, EnvironmentPolicy.from_dict(data))
    session.commit()
    return env


@blp.route("/<int:project_id>/environments/<name>/releases", methods=["GET"])
@require_token
@blp.response(200, ReleaseOut(many=True))
@blp.paginate(SelectPage)
def list_releases(project_id: int, name: str) -> Any:
    """Releases in the environment, newest first (the first not rolled back is live)."""
    env = projects.get_environment(get_session(), project_id, name)
    return select(Release).where(Release.environment_id == env.id).order_by(Release.id.desc())


@blp.route("/<int:project_id>/environments/<name>/rollback", methods=["POST"])
@require_roles(*MANAGERS)
@blp.arguments(RollbackIn())
@blp.response(201, PromotionOut)
def rollback(data: dict[str, Any], project_id: int, name: str) -> Any:
    """Promote the previous verified release again; holds automatic promotion."""
    session = get_session()
    env = _scoped_environment(project_id, name)
    promotion = releases.rollback(session, current_actor(), env, data.get("reason") or "")
    session.commit()
    return promotion


@blp.route("/<int:project_id>/environments/<name>/hold", methods=["DELETE"])
@require_roles(*MANAGERS)
@blp.response(200, EnvironmentOut)
def lift_hold(project_id: int, name: str) -> Any:
    """Lift the hold so automatic promotion resumes."""
    session = get_session()
    env = _scoped_environment(project_id, name)
    releases.lift_hold(session, current_actor(), env)
    session.commit()
    return env


def _detail(project: Project) -> Extended:
    return Extended(project, environments=projects.environments(get_session(), project.id))


def _scoped_environment(project_id: int, name: str) -> Environment:
    """The environment, once a project-scoped token is known to be this project's."""
    session = get_session()
    projects.check_scope(current_actor(), projects.get_project(session, project_id).path)
    return projects.get_environment(session, project_id, name)
