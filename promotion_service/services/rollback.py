"""Rollback: back to a release verified in the environment, with exactly the image, template
and configuration it ran with, and a hold on the environment.

The service picks the release (the newest one verified there before the live one, of another,
unrevoked release, never one rolled back out of the environment: two rollbacks in a row go
back two releases) and triggers a pipeline whose rollback job restores that very release from
the target's records: `CD_ROLLBACK_TO=<record id>` runs `docker-cd rollback --to` it. The
rollback job started by hand and an old deploy job run again reach the same releases through
a claim (services/claims.py).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from ..db import write_transaction
from ..db.listing import Extended
from ..domain.actor import Actor
from ..errors import Conflict
from ..store import promotions, releases, rollouts
from . import holds, lookups, promotion


def rollback(session: Session, actor: Actor, project_id: int, name: str,
             reason: str) -> Extended:
    """The rollback promotion that takes the environment back to its last verified release."""
    with write_transaction(session):
        env = lookups.scoped_environment(session, actor, project_id, name)
        target = rollouts.rollback_target(session, env)
        if target is None:
            raise Conflict(f"{env.name} has nothing to roll back to: no release verified "
                           f"there before the live one that is unrevoked and was not itself "
                           f"rolled back out of {env.name}")
        if not target.record_id:
            raise Conflict(f"rollout {target.id} of {env.name} has no record id (it was not "
                           "reported by `docker-cd deploy`), so no pipeline can restore exactly "
                           f"it; run the rollback-{env.name} job, which picks from the target's "
                           "records")
        release = releases.get(session, target.release_id)
        created, is_new = promotion.create(session, actor, release, env, "rollback",
                                           reason or f"rollback of {env.name}",
                                           record_id=target.record_id)
        if not is_new:
            raise Conflict(f"promotion {created.id} of that release into {env.name} is already "
                           f"{created.state}")
        holds.set_hold(session, actor, env, f"rollback to release {release.id} (record "
                                            f"{target.record_id}) by {actor.name}")
    return promotions.named(created, release, env)
