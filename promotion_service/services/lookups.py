"""What a request names, found: a 404 that helps when it does not exist, a 403 when the
token's project scope does not cover it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from ..db.models import Environment, Image, Project, Release
from ..domain.actor import Actor
from ..errors import Forbidden, Invalid, NotFound
from ..store import images, projects, releases


def check_scope(actor: Actor, project_path: str) -> None:
    """A project-scoped token touches only its project."""
    if not actor.may_act_on(project_path):
        raise Forbidden(f"this token is limited to project {actor.project!r}, "
                        f"not {project_path!r}")


def scoped_filters(actor: Actor, filters: dict[str, Any]) -> dict[str, Any]:
    """A listing's filters, narrowed to the token's project (another project is a 403)."""
    if actor.project is None:
        return filters
    if filters.get("project") is not None:
        check_scope(actor, filters["project"])
    return {**filters, "project": actor.project}


def check_job_environment(actor: Actor, environment: str) -> None:
    """A job authenticated by its ID token acts only on its own job's environment."""
    if actor.pipeline is None or actor.pipeline.environment == environment:
        return
    job = actor.pipeline.environment
    what = f"environment {job}" if job else "a job without an environment"
    raise Forbidden(f"this job's ID token is for {what}; only a job with `environment: "
                    f"{environment}` acts on {environment}")


def check_image_scope(session: Session, actor: Actor, image: Image) -> None:
    """A project-scoped token touches only its own project's images."""
    check_scope(actor, images.project_path(session, image))


def not_registered(repository: str, digest: str) -> NotFound:
    """The 404 for an unknown image, saying how to register it."""
    return NotFound(f"image {repository}@{digest} is not registered "
                    "(register it with POST /api/v1/images)")


def image(session: Session, repository: str, digest: str) -> Image:
    """The image or a 404 that says how to register it."""
    found = images.find(session, repository, digest)
    if found is None:
        raise not_registered(repository, digest)
    return found


def image_by_id(session: Session, image_id: int) -> Image:
    """The image or 404."""
    found = images.get(session, image_id)
    if found is None:
        raise NotFound(f"no image with id {image_id}")
    return found


def project(session: Session, project_id: int) -> Project:
    """The project or 404."""
    found = projects.get(session, project_id)
    if found is None:
        raise NotFound(f"no project with id {project_id}")
    return found


def environment(session: Session, project_id: int, name: str) -> Environment:
    """One environment of the project, or 404 naming the ones that exist."""
    env = projects.environment(session, project_id, name)
    if env is None:
        raise missing_environment(session, project_id, name)
    return env


def missing_environment(conn: Session | Connection, project_id: int, name: str) -> NotFound:
    """The 404 for an environment the project does not have, naming the ones it has."""
    names = ", ".join(projects.environment_names(conn, project_id)) or "none"
    return NotFound(f"environment {name!r} does not exist in this project (it has: {names})")


def check_release_scope(session: Session, actor: Actor, release: Release) -> None:
    """A project-scoped token touches only its own project's releases."""
    check_scope(actor, releases.project_path(session, release))


def release_by_id(session: Session, release_id: int, field: str | None = None) -> Release:
    """The release or 404 (naming the field a request gave it in)."""
    found = releases.get(session, release_id)
    if found is None:
        raise NotFound(f"no release with id {release_id}"
                       + (f" (field {field}; register it with POST /api/v1/releases)"
                          if field else ""))
    return found


def release_of_image(session: Session, image: Image, location: str = "json") -> Release:
    """The one-member release of an image (what a request naming an image means)."""
    release_id = releases.one_member_of_image(session, image.id)
    if release_id is None:
        raise Invalid.field("release_id", f"{image.repository}@{image.digest} is only a member "
                            "of releases of several images: name the release by its id "
                            "(CD_RELEASE_ID)", location)
    return release_by_id(session, release_id)


def release(session: Session, *, release_id: int | None = None, repository: str | None = None,
            digest: str | None = None, location: str = "json") -> Release:
    """The release a request names: by id, or an image's one-member release."""
    if release_id is not None:
        return release_by_id(session, release_id, "release_id")
    if not repository or not digest:
        raise Invalid.field("release_id", "name the release (release_id), or the image "
                            "(repository and digest)", location)
    return release_of_image(session, image(session, repository, digest), location)


def release_and_environment(session: Session, environment_name: str,
                            **names: Any) -> tuple[Release, Environment]:
    """The release and environment a request names (404s say which is unknown)."""
    found = release(session, **names)
    return found, environment(session, found.project_id, environment_name)


def scoped_environment(session: Session, actor: Actor, project_id: int,
                       name: str) -> Environment:
    """The environment, once a project-scoped token is known to be this project's."""
    check_scope(actor, project(session, project_id).path)
    return environment(session, project_id, name)
