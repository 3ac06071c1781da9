"""Releases (the ledger's unit) and their members."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from ..db import insert_if_new
from ..db.listing import Listing
from ..db.models import Image, Project, Promotion, Release, ReleaseMember, utcnow
from ..domain.identity import authors as persons
from ..domain.identity import member_authors

_INSERT_MEMBERS = insert(ReleaseMember.__table__)


def get(session: Session, release_id: int) -> Release | None:
    """The release with this id, if any."""
    return session.get(Release, release_id)


def find(session: Session, digest: str) -> Release | None:
    """The release with this identity, if registered."""
    return session.scalar(select(Release).where(Release.digest == digest))


def id_of(session: Session, digest: str) -> int | None:
    """The id of the release with this identity (one indexed read, no ORM object)."""
    return session.scalar(select(Release.id).where(Release.digest == digest))


def insert_new(session: Session, values: dict[str, Any],
               members: list[dict[str, Any]]) -> int | None:
    """INSERT the release and its members; None if a release with this identity (digest) is
    already registered (by a concurrent request, say)."""
    release_id = insert_if_new(session, Release.__table__, ("digest",), values)
    if release_id is not None:
        session.connection().execute(_INSERT_MEMBERS,
                                     [dict(m, release_id=release_id) for m in members])
    return release_id


def one_member_of_image(session: Session, image_id: int) -> int | None:
    """The newest one-member release of the image (what an image reference names)."""
    return session.scalar(
        select(Release.id).join(ReleaseMember, ReleaseMember.release_id == Release.id)
        .where(ReleaseMember.image_id == image_id, Release.member_count == 1)
        .order_by(Release.id.desc()).limit(1))


def containing(session: Session, image_id: int) -> list[Release]:
    """Every release with this image among its members, oldest first."""
    return list(session.scalars(
        select(Release).join(ReleaseMember, ReleaseMember.release_id == Release.id)
        .where(ReleaseMember.image_id == image_id).order_by(Release.id)))


def authors(session: Session, release: Release) -> frozenset[str]:
    """Who four-eyes keeps from approving the release: its pipeline's people and those of
    every member's image (a reused image's author still wrote part of it)."""
    found = persons(release.registered_by, release.triggered_by, release.commit_author)
    for row in session.execute(
            select(ReleaseMember.built, Image.registered_by, Image.triggered_by,
                   Image.commit_author)
            .join(ReleaseMember, ReleaseMember.image_id == Image.id)
            .where(ReleaseMember.release_id == release.id)):
        found |= member_authors(*row)
    return found


def mark_revoked(session: Session, release_ids: list[int], reason: str) -> None:
    """These releases contain a revoked image: none goes anywhere any more."""
    if release_ids:
        session.execute(update(Release).where(Release.id.in_(release_ids),
                                              Release.revoked_at.is_(None))
                        .values(revoked_at=utcnow(), revoked_reason=reason)
                        .execution_options(synchronize_session=False))


def project_path(session: Session, release: Release) -> str:
    """The path of the release's project."""
    return session.scalar(select(Project.path).where(Project.id == release.project_id)) or ""


def listing(session: Session, *, project: str | None = None, digest: str | None = None,
            commit_sha: str | None = None, revoked: bool | None = None) -> Listing:
    """Releases, newest first, filtered (members loaded per page in one more query)."""
    stmt = select(Release)
    if project:
        stmt = stmt.join(Project, Project.id == Release.project_id).where(
            Project.path == project)
    for attr, value in ((Release.digest, digest), (Release.commit_sha, commit_sha)):
        if value:
            stmt = stmt.where(attr == value)
    if revoked is not None:
        stmt = stmt.where(Release.revoked_at.is_not(None) if revoked
                          else Release.revoked_at.is_(None))
    return Listing(session, stmt, Release.id)


def of_commit(session: Session, project_id: int, sha: str,
              environment_id: int | None = None) -> Release | None:
    """The release built from a commit; the one being promoted into the environment first."""
    if environment_id is not None:
        promoted = session.scalar(
            select(Release).join(Promotion, Promotion.release_id == Release.id)
            .where(Promotion.environment_id == environment_id, Release.commit_sha == sha)
            .order_by(Promotion.id.desc()).limit(1))
        if promoted is not None:
            return promoted
    return session.scalar(select(Release).where(Release.project_id == project_id,
                                                Release.commit_sha == sha)
                          .order_by(Release.id.desc()).limit(1))


def count(session: Session) -> int:
    """How many releases are registered."""
    return session.scalar(select(func.count(Release.id))) or 0
