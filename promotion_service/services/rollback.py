"""Rollback: promote the previous verified release again, and hold the environment."""

from __future__ import annotations

from sqlalchemy.orm import Session

from ..db import write_transaction
from ..db.listing import Extended
from ..domain.actor import Actor
from ..errors import Conflict
from ..store import images, promotions, releases
from . import holds, lookups, promotion


def rollback(session: Session, actor: Actor, project_id: int, name: str,
             reason: str) -> Extended:
    """The promotion that takes the environment back to its last verified other image."""
    with write_transaction(session):
        env = lookups.scoped_environment(session, actor, project_id, name)
        target = releases.rollback_target(session, env)
        if target is None:
            raise Conflict(f"{env.name} has no earlier verified release of another, unrevoked "
                           "image to roll back to")
        image = images.get(session, target.image_id)
        created, is_new = promotion.create(session, actor, image, env, "rollback",
                                           reason or f"rollback of {env.name}")
        if not is_new:
            raise Conflict(f"promotion {created.id} of that image into {env.name} is already "
                           f"{created.state}")
        holds.set_hold(session, actor, env, f"rollback to image {image.id} by {actor.name}")
    return promotions.named(created, image, env)
