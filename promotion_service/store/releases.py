"""Releases (what is live where, and before), holds, and rollback."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..domain.actor import Actor
from ..errors import Conflict
from ..models import Environment, Image, Promotion, Release, utcnow
from . import audit, promotions


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


def rollback_target(session: Session, env: Environment) -> Release | None:
    """The last verified release before the current one, of another, unrevoked image."""
    live = current(session, env.id)
    stmt = (select(Release).join(Image, Image.id == Release.image_id)
            .where(Release.environment_id == env.id, Release.verified_at.is_not(None),
                   Image.revoked_at.is_(None)).order_by(Release.id.desc()))
    if live is not None:
        stmt = stmt.where(Release.id < live.id, Release.image_id != live.image_id)
    return session.scalars(stmt.limit(1)).first()


def rollback(session: Session, actor: Actor, env: Environment, reason: str) -> Promotion:
    """Promote the previous verified release again and hold the environment."""
    target = rollback_target(session, env)
    if target is None:
        raise Conflict(f"{env.name} has no earlier verified release of another, unrevoked "
                       "image to roll back to")
    image = session.get(Image, target.image_id)
    promotion, created = promotions.create(session, actor, image, env, "rollback",
                                           reason or f"rollback of {env.name}")
    if not created:
        raise Conflict(f"promotion {promotion.id} of that image into {env.name} is already "
                       f"{promotion.state}")
    set_hold(session, actor, env, f"rollback to image {image.id} by {actor.name}")
    return promotion


def set_hold(session: Session, actor: Actor, env: Environment, reason: str) -> None:
    """Stop automatic promotion into the environment until someone lifts the hold."""
    if env.hold_at is not None:
        return
    env.hold_reason, env.hold_by, env.hold_at = reason, actor.name, utcnow()
    session.flush()
    audit.append(session, actor, "environment.hold_set", "environment", env.id,
                 before={"hold": None}, after={"hold": reason})


def lift_hold(session: Session, actor: Actor, env: Environment) -> bool:
    """Let automatic promotion resume; False if there was no hold."""
    if env.hold_at is None:
        return False
    before = {"hold": env.hold_reason, "by": env.hold_by}
    env.hold_reason = env.hold_by = env.hold_at = None
    session.flush()
    audit.append(session, actor, "environment.hold_lifted", "environment", env.id,
                 before=before, after={"hold": None})
    return True
