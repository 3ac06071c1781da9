"""Images, named by repository and digest."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, attributes, instrumentation

from ..db import insert_if_new
from ..db.listing import Listing
from ..db.models import Image, Project

_IMAGE_CLASS = instrumentation.manager_of_class(Image)


def insert_new(session: Session, values: dict[str, Any]) -> Image | None:
    """INSERT the image (Core: registration is on every pipeline's path); None if its
    repository and digest are already registered (by a concurrent request, say)."""
    image_id = insert_if_new(session, Image.__table__, ("repository", "digest"), values)
    return None if image_id is None else _loaded_image(id=image_id, **values)


def _loaded_image(**row: Any) -> Image:
    """An Image (not in the session) holding the row just inserted, for the response.

    Fills its state the way the ORM's loader does, without the per-attribute change events of
    Image(**row): a tenth of the cost, on every registration.
    """
    image = _IMAGE_CLASS.new_instance()
    attributes.instance_dict(image).update(row)
    return image


def claim(session: Session, image_id: int, **values: Any) -> None:
    """Move an image to another project, with the facts of the pipeline that built it."""
    session.execute(update(Image).where(Image.id == image_id).values(**values))


def find(session: Session, repository: str, digest: str) -> Image | None:
    """The image with this repository and digest, if registered."""
    return session.scalar(select(Image).where(Image.repository == repository,
                                              Image.digest == digest))


def get(session: Session, image_id: int) -> Image | None:
    """The image with this id, if any."""
    return session.get(Image, image_id)


def project_path(session: Session, image: Image) -> str:
    """The path of the image's project."""
    return session.scalar(select(Project.path).where(Project.id == image.project_id)) or ""


def listing(session: Session, *, project: str | None = None, repository: str | None = None,
            digest: str | None = None, commit_sha: str | None = None,
            revoked: bool | None = None) -> Listing:
    """Images, newest first, filtered."""
    stmt = select(Image)
    if project:
        stmt = stmt.join(Project, Project.id == Image.project_id).where(Project.path == project)
    for attr, value in ((Image.repository, repository), (Image.digest, digest),
                        (Image.commit_sha, commit_sha)):
        if value:
            stmt = stmt.where(attr == value)
    if revoked is not None:
        stmt = stmt.where(Image.revoked_at.is_not(None) if revoked else Image.revoked_at.is_(None))
    return Listing(session, stmt, Image.id)


def count(session: Session) -> int:
    """How many images are registered."""
    return session.scalar(select(func.count(Image.id))) or 0
