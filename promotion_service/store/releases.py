"""Releases: what went live where (the latest not rolled back is current), and before."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, select, update
from sqlalchemy.orm import Session

from ..db.listing import Extended, Listing
from ..db.models import Environment, Image, Release, utcnow


def current(session: Session, environment_id: int) -> Release | None:
    """The live release: the latest one not rolled back."""
    return session.scalar(select(Release).where(Release.environment_id == environment_id,
                                                Release.rolled_back_at.is_(None))
                          .order_by(Release.id.desc()).limit(1))


def latest_for(session: Session, environment_id: int, image_id: int) -> Release | None:
    """The image's latest release in the environment."""
    return session.scalar(select(Release).where(Release.environment_id == environment_id,
                                                Release.image_id == image_id)
                          .order_by(Release.id.desc()).limit(1))


def verified(session: Session, environment_id: int, *, release_id: str | None = None,
             image_id: int | None = None) -> Release | None:
    """The newest verified release in the environment with that release id (or image)."""
    stmt = select(Release).where(Release.environment_id == environment_id,
                                 Release.verified_at.is_not(None))
    if release_id is not None:
        stmt = stmt.where(Release.release_id == release_id)
    if image_id is not None:
        stmt = stmt.where(Release.image_id == image_id)
    return session.scalars(stmt.order_by(Release.id.desc()).limit(1)).first()


def rollback_target(session: Session, env: Environment) -> Release | None:
    """The last verified release before the current one, of another, unrevoked image."""
    live = current(session, env.id)
    stmt = (select(Release).join(Image, Image.id == Release.image_id)
            .where(Release.environment_id == env.id, Release.verified_at.is_not(None),
                   Image.revoked_at.is_(None)).order_by(Release.id.desc()))
    if live is not None:
        stmt = stmt.where(Release.id < live.id, Release.image_id != live.image_id)
    return session.scalars(stmt.limit(1)).first()


def add(session: Session, *, environment_id: int, image_id: int, promotion_id: int | None,
        deployment_id: int, release_id: str | None = None, rollback_of: str | None = None,
        verified_at: datetime | None = None) -> Release:
    """A release: the deployment went live (a rollback's is verified from the start)."""
    release = Release(environment_id=environment_id, image_id=image_id,
                      promotion_id=promotion_id, deployment_id=deployment_id,
                      release_id=release_id, rollback_of=rollback_of, verified_at=verified_at)
    session.add(release)
    session.flush()
    return release


def roll_back(session: Session, deployment_id: int) -> None:
    """The deployment's release is no longer live."""
    session.execute(update(Release).where(Release.deployment_id == deployment_id,
                                          Release.rolled_back_at.is_(None))
                    .values(rolled_back_at=utcnow())
                    .execution_options(synchronize_session=False))


def listing(session: Session, environment_id: int) -> Listing:
    """Releases in the environment, newest first, each with its image reference."""
    stmt = (select(Release, Image.repository, Image.digest)
            .join(Image, Image.id == Release.image_id)
            .where(Release.environment_id == environment_id).order_by(Release.id.desc()))
    return Listing(session, stmt, _named_row)


def _named_row(row: Row[Any]) -> Extended:
    return Extended(row.Release, image=f"{row.repository}@{row.digest}")


def of_image(session: Session, environment_id: int, image_id: int) -> list[Release]:
    """The image's releases in the environment, newest first (its path through it)."""
    return list(session.scalars(select(Release).where(Release.environment_id == environment_id,
                                                      Release.image_id == image_id)
                                .order_by(Release.id.desc())))
