"""/api/v1/projects: projects, environments and policies, releases, holds, rollback."""

from __future__ import annotations

from typing import Any

from ..db import get_session
from ..domain.actor import ADMINS, MANAGERS
from ..services import holds, projects, rollback
from .auth import current_actor, require_roles, require_token
from .context import policies
from .pagination import Blueprint
from .schemas.projects import (
    EnvironmentOut,
    HoldIn,
    PolicyIn,
    ProjectDetail,
    ProjectIn,
    ProjectOut,
)
from .schemas.promotions import PromotionOut, RollbackIn, RolloutOut

blp = Blueprint("projects", __name__, description="Projects, environments, releases, rollback")


@blp.route("", methods=["POST"])
@require_roles(*ADMINS)
@blp.arguments(ProjectIn())
@blp.response(201, ProjectDetail)
def create(data: dict[str, Any]) -> Any:
    """Create a project; its environments come from the policy file."""
    return projects.create(get_session(), current_actor(), policies(), data["path"],
                           data.get("gitlab_id"))


@blp.route("", methods=["GET"])
@require_token
@blp.response(200, ProjectOut(many=True))
@blp.paginate_listing()
def list_projects() -> Any:
    """All projects (a project-scoped token sees its own)."""
    return projects.listing(get_session(), current_actor())


@blp.route("/<int:project_id>", methods=["GET"])
@require_token
@blp.response(200, ProjectDetail)
def show(project_id: int) -> Any:
    """A project with its environments, policies and holds."""
    return projects.get(get_session(), current_actor(), project_id)


@blp.route("/<int:project_id>/environments/<name>/policy", methods=["PUT"])
@require_roles(*ADMINS)
@blp.arguments(PolicyIn(), required=False)  # no body: the default policy
@blp.response(200, EnvironmentOut)
def set_policy(data: dict[str, Any], project_id: int, name: str) -> Any:
    """Replace an environment's policy: the whole of it, with a reason; a change that loosens
    it needs `loosen: true` (409 otherwise, naming what it loosens)."""
    reason, loosen = data.pop("reason"), data.pop("loosen", False)
    return projects.set_policy(get_session(), current_actor(), project_id, name, data,
                               reason=reason, loosen=loosen)


@blp.route("/<int:project_id>/environments/<name>/releases", methods=["GET"])
@require_token
@blp.response(200, RolloutOut(many=True))
@blp.paginate_listing()
def list_releases(project_id: int, name: str) -> Any:
    """Releases in the environment, newest first (the first not rolled back is live)."""
    return projects.releases_of(get_session(), current_actor(), project_id, name)


@blp.route("/<int:project_id>/environments/<name>/rollback", methods=["POST"])
@require_roles(*MANAGERS)
@blp.arguments(RollbackIn(), required=False)
@blp.response(201, PromotionOut)
def rollback_environment(data: dict[str, Any], project_id: int, name: str) -> Any:
    """Promote the previous verified release again; holds automatic promotion."""
    return rollback.rollback(get_session(), current_actor(), project_id, name,
                             data.get("reason") or "")


@blp.route("/<int:project_id>/environments/<name>/hold", methods=["PUT"])
@require_roles(*MANAGERS)
@blp.arguments(HoldIn())
@blp.response(200, EnvironmentOut)
def put_hold(data: dict[str, Any], project_id: int, name: str) -> Any:
    """Hold the environment: nothing is promoted into it automatically until it is lifted."""
    return holds.put_hold(get_session(), current_actor(), project_id, name, data["reason"])


@blp.route("/<int:project_id>/environments/<name>/hold", methods=["DELETE"])
@require_roles(*MANAGERS)
@blp.response(200, EnvironmentOut)
def lift_hold(project_id: int, name: str) -> Any:
    """Lift the hold so automatic promotion resumes."""
    return holds.lift_hold(get_session(), current_actor(), project_id, name)
