"""What DORA's keys are computed from: the rollouts of releases into environments, failed
deployments and rollbacks, since a moment."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.orm import Session

from ..db.models import Deployment, Promotion, Release, Rollout, Verification


def rollouts(session: Session, env_ids: Sequence[int], since: datetime) -> list[Any]:
    """Rollouts live or verified since the moment: environment_id, deployed_at, verified_at,
    the release's commit_time, whether a rollback, a failed verification or a revocation
    followed, and whether it restored an earlier record."""
    failed_check = exists().where(Verification.release_id == Rollout.release_id,
                                  Verification.environment_id == Rollout.environment_id,
                                  Verification.passed.is_(False),
                                  Verification.created_at >= Rollout.created_at)
    stmt = (select(Rollout.environment_id, Rollout.created_at.label("deployed_at"),
                   Rollout.verified_at, Release.commit_time,
                   or_(Rollout.rolled_back_at.is_not(None), Release.revoked_at.is_not(None),
                       failed_check).label("failed"),
                   Rollout.rollback_of.is_not(None).label("rollback"))
            .join(Release, Release.id == Rollout.release_id)
            .where(Rollout.environment_id.in_(env_ids),
                   or_(Rollout.created_at >= since, Rollout.verified_at >= since))
            .order_by(Rollout.id))
    return list(session.execute(stmt))


def failures(session: Session, env_ids: Sequence[int], since: datetime) -> list[Any]:
    """Failed deployments and rollbacks since the moment: environment_id, at."""
    failed = select(Deployment.environment_id, Deployment.created_at.label("at")).where(
        Deployment.environment_id.in_(env_ids), Deployment.state == "failed",
        Deployment.created_at >= since)
    rolled_back = select(Promotion.environment_id, Promotion.created_at.label("at")).where(
        and_(Promotion.environment_id.in_(env_ids), Promotion.kind == "rollback",
             Promotion.created_at >= since))
    return list(session.execute(failed.union_all(rolled_back)))
