"""Rollouts: which release went live where (the latest not rolled back is current), and
before."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, select, update
from sqlalchemy.orm import Session, aliased

from ..db.listing import Extended, Listing
from ..db.models import Environment, Release, Rollout, utcnow
from ..domain.policy import RolledBack


def current(session: Session, environment_id: int) -> Rollout | None:
    """The live rollout: the latest one not rolled back."""
    return session.scalar(select(Rollout).where(Rollout.environment_id == environment_id,
                                                Rollout.rolled_back_at.is_(None))
                          .order_by(Rollout.id.desc()).limit(1))


def latest_for(session: Session, environment_id: int, release_id: int) -> Rollout | None:
    """The release's latest rollout in the environment."""
    return session.scalar(select(Rollout).where(Rollout.environment_id == environment_id,
                                                Rollout.release_id == release_id)
                          .order_by(Rollout.id.desc()).limit(1))


def verified(session: Session, environment_id: int, *, record_id: str | None = None,
             release_id: int | None = None) -> Rollout | None:
    """The newest verified rollout in the environment with that target record (or release)."""
    stmt = select(Rollout).where(Rollout.environment_id == environment_id,
                                 Rollout.verified_at.is_not(None))
    if record_id is not None:
        stmt = stmt.where(Rollout.record_id == record_id)
    if release_id is not None:
        stmt = stmt.where(Rollout.release_id == release_id)
    return session.scalars(stmt.order_by(Rollout.id.desc()).limit(1)).first()


def rollback_target(session: Session, env: Environment) -> Rollout | None:
    """Where a rollback goes: the newest verified rollout of another, unrevoked release than
    the live one, never of a release rolled back out of the environment (so repeated
    rollbacks walk back: 4 -> 3 -> 2)."""
    live = current(session, env.id)
    later = aliased(Rollout)
    rolled_back_since = (select(later.id).where(later.environment_id == Rollout.environment_id,
                                                 later.release_id == Rollout.release_id,
                                                 later.id >= Rollout.id,
                                                 later.rolled_back_at.is_not(None))
                         .exists())
    stmt = (select(Rollout).join(Release, Release.id == Rollout.release_id)
            .where(Rollout.environment_id == env.id, Rollout.verified_at.is_not(None),
                   Release.revoked_at.is_(None), ~rolled_back_since)
            .order_by(Rollout.id.desc()))
    if live is not None:
        stmt = stmt.where(Rollout.id < live.id, Rollout.release_id != live.release_id)
    return session.scalars(stmt.limit(1)).first()


def rolled_back_out(session: Session, env: Environment,
                    release_id: int) -> tuple[Rollout, RolledBack] | None:
    """The release's latest rollout in the environment and how it left, if it was rolled
    back (a release rolled forward since is not)."""
    latest = latest_for(session, env.id, release_id)
    if latest is None or latest.rolled_back_at is None:
        return None
    return latest, RolledBack(env.name, latest.rolled_back_at, latest.rolled_back_by or "",
                              latest.rolled_back_reason or "")


def add(session: Session, *, environment_id: int, release_id: int, promotion_id: int | None,
        deployment_id: int, record_id: str | None = None, rollback_of: str | None = None,
        verified_at: datetime | None = None) -> Rollout:
    """A rollout: the deployment went live (a rollback's is verified from the start)."""
    rollout = Rollout(environment_id=environment_id, release_id=release_id,
                      promotion_id=promotion_id, deployment_id=deployment_id,
                      record_id=record_id, rollback_of=rollback_of, verified_at=verified_at)
    session.add(rollout)
    session.flush()
    return rollout


def roll_back(session: Session, *, by: str, reason: str | None,
              deployment_id: int | None = None, rollout_id: int | None = None) -> None:
    """The rollout (or the deployment's) is no longer live: rolled back, by whom and why."""
    where = (Rollout.id == rollout_id if rollout_id is not None
             else Rollout.deployment_id == deployment_id)
    session.execute(update(Rollout).where(where, Rollout.rolled_back_at.is_(None))
                    .values(rolled_back_at=utcnow(), rolled_back_by=by,
                            rolled_back_reason=reason)
                    .execution_options(synchronize_session=False))


def listing(session: Session, environment_id: int) -> Listing:
    """Rollouts in the environment, newest first, each with its release (members loaded
    for the whole page in one more query)."""
    stmt = (select(Rollout, Release)
            .join(Release, Release.id == Rollout.release_id)
            .where(Rollout.environment_id == environment_id))
    return Listing(session, stmt, Rollout.id, _named_row)


def _named_row(row: Row[Any]) -> Extended:
    return Extended(row.Rollout, image=row.Release.label, release_digest=row.Release.digest)


def of_release(session: Session, environment_id: int, release_id: int) -> list[Rollout]:
    """The release's rollouts in the environment, newest first (its path through it)."""
    return list(session.scalars(select(Rollout).where(Rollout.environment_id == environment_id,
                                                      Rollout.release_id == release_id)
                                .order_by(Rollout.id.desc())))
