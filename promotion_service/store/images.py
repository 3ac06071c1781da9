"""Images: registration (idempotent by repository + digest), lookup, revocation."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Integer, Select, column, insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, attributes, instrumentation

from ..db import begin_write
from ..domain.actor import Actor
from ..errors import Conflict, NotFound
from ..models import Environment, Image, Project, utcnow
from ..policy_file import PolicySet
from . import audit, projects, releases

AUDITED = ("repository", "digest", "commit_sha", "ref", "tags", "pipeline_id")


def register(session: Session, actor: Actor, policies: PolicySet, *, project: str,
             repository: str, digest: str, gitlab_project_id: int | None = None,
             **fields: Any) -> tuple[Image, bool]:
    """The image (created=True) or the one already registered with this digest.

    Registration is on every pipeline's path: Core statements rather than the ORM's unit of
    work, reads before the write lock, and the lock held only for the two INSERTs.
    """
    projects.check_scope(actor, project)
    conn = session.connection()
    existing, project_id = conn.execute(_IDS, {"r": repository, "d": digest, "p": project}).one()
    if existing is not None:
        return _same_project(session, session.get(Image, existing), project), False
    begin_write(session)
    if project_id is None:
        project_id = projects.ensure_project(session, actor, project, policies,
                                             gitlab_project_id).id
    values = dict(_NEW_IMAGE, project_id=project_id, repository=repository, digest=digest,
                  registered_by=actor.name, created_at=utcnow(), **fields)
    values["commit_time"] = parse_time(values["commit_time"])
    try:
        image_id = conn.execute(_INSERT_IMAGE, values).inserted_primary_key[0]
    except IntegrityError:  # registered by another request since the read above
        session.rollback()
        return _same_project(session, find(session, repository, digest), project), False
    image = _loaded_image(id=image_id, **values)
    audit.append(session, actor, "image.registered", "image", image_id,
                 after={k: values.get(k) for k in AUDITED} | {"project": project})
    return image, True


_NEW_IMAGE = {c: None for c in ("commit_sha", "commit_time", "ref", "pipeline_id", "pipeline_url",
                                 "triggered_by", "revoked_at", "revoked_by", "revoked_reason")}
_NEW_IMAGE["tags"] = []
_INSERT_IMAGE = insert(Image.__table__)
# typed result columns: SQLAlchemy then builds the result's metadata once, not per request
_IDS = text("SELECT (SELECT id FROM images WHERE repository = :r AND digest = :d) AS image_id, "
            "(SELECT id FROM projects WHERE path = :p) AS project_id"
            ).columns(column("image_id", Integer), column("project_id", Integer))
_IMAGE_CLASS = instrumentation.manager_of_class(Image)


def _loaded_image(**row: Any) -> Image:
    """An Image (not in the session) holding the row just inserted, for the response.

    Fills its state the way the ORM's loader does, without the per-attribute change events of
    Image(**row): a tenth of the cost, on every registration.
    """
    image = _IMAGE_CLASS.new_instance()
    attributes.instance_dict(image).update(row)
    return image


def find(session: Session, repository: str, digest: str) -> Image | None:
    """The image with this repository and digest, if registered."""
    return session.scalar(select(Image).where(Image.repository == repository,
                                              Image.digest == digest))


def get(session: Session, repository: str, digest: str) -> Image:
    """The image or a 404 that says how to register it."""
    image = find(session, repository, digest)
    if image is None:
        raise not_registered(repository, digest)
    return image


def not_registered(repository: str, digest: str) -> NotFound:
    """The 404 for an unknown image, saying how to register it."""
    return NotFound(f"image {repository}@{digest} is not registered "
                    "(register it with POST /api/v1/images)")


def get_by_id(session: Session, image_id: int) -> Image:
    """The image or 404."""
    image = session.get(Image, image_id)
    if image is None:
        raise NotFound(f"no image with id {image_id}")
    return image


def query(*, project: str | None = None, repository: str | None = None,
          digest: str | None = None, commit_sha: str | None = None,
          revoked: bool | None = None) -> Select[tuple[Image]]:
    """A filtered, newest-first selection for listing."""
    stmt = select(Image).order_by(Image.id.desc())
    if project:
        stmt = stmt.join(Project, Project.id == Image.project_id).where(Project.path == project)
    for attr, value in ((Image.repository, repository), (Image.digest, digest),
                        (Image.commit_sha, commit_sha)):
        if value:
            stmt = stmt.where(attr == value)
    if revoked is not None:
        stmt = stmt.where(Image.revoked_at.is_not(None) if revoked else Image.revoked_at.is_(None))
    return stmt


def revoke(session: Session, actor: Actor, image: Image, reason: str) -> bool:
    """Mark the image bad for good; False if it was already revoked."""
    check_scope(session, actor, image)
    if image.revoked_at is not None:
        return False
    image.revoked_at, image.revoked_by, image.revoked_reason = utcnow(), actor.name, reason
    session.flush()
    audit.append(session, actor, "image.revoked", "image", image.id,
                 before={"revoked": False},
                 after={"revoked": True, "reason": reason,
                        "running_in": running_in(session, image)})
    return True


def running_in(session: Session, image: Image) -> list[str]:
    """Environments whose current release is this image."""
    envs = session.scalars(select(Environment).where(Environment.project_id == image.project_id)
                           .order_by(Environment.position))
    return [env.name for env in envs
            if (cur := releases.current(session, env.id)) is not None and cur.image_id == image.id]


def project_path(session: Session, image: Image) -> str:
    """The path of the image's project."""
    return session.scalar(select(Project.path).where(Project.id == image.project_id)) or ""


def check_scope(session: Session, actor: Actor, image: Image) -> None:
    """A project-scoped token touches only its own project's images."""
    projects.check_scope(actor, project_path(session, image))


def parse_time(value: datetime | None) -> datetime | None:
    """Naive UTC, the way every timestamp is stored."""
    if value is None or value.tzinfo is None:
        return value
    return (value - value.utcoffset()).replace(tzinfo=None)


def _same_project(session: Session, image: Image | None, project: str) -> Image:
    if image is None:  # pragma: no cover - a concurrent delete; there is no delete
        raise NotFound("image vanished while registering")
    path = project_path(session, image)
    if path != project:
        raise Conflict(f"{image.repository}@{image.digest} is already registered for project "
                       f"{path!r}, not {project!r}")
    return image
