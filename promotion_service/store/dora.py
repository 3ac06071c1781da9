"""What DORA's keys are computed from: the releases that went live in environments, failed
deployments and rollbacks, since a moment."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.orm import Session

from ..db.models import Deployment, Image, Promotion, Release, Verification


def rollouts(session: Session, env_ids: Sequence[int], since: datetime) -> list[Any]:
    """Releases live or verified since the moment: environment_id, deployed_at, verified_at,
    commit_time, whether a rollback, a failed verification or a revocation followed, and
    whether it restored an earlier release."""
    failed_check = exists().where(Verification.image_id == Release.image_id,
                                  Verification.environment_id == Release.environment_id,
                                  Verification.passed.is_(False),
                                  Verification.created_at >= Release.created_at)
    stmt = (select(Release.environment_id, Release.created_at.label("deployed_at"),
                   Release.verified_at, Image.commit_time,
                   or_(Release.rolled_back_at.is_not(None), Image.revoked_at.is_not(None),
                       failed_check).label("failed"),
                   Release.rollback_of.is_not(None).label("rollback"))
            .join(Image, Image.id == Release.image_id)
            .where(Release.environment_id.in_(env_ids),
                   or_(Release.created_at >= since, Release.verified_at >= since))
            .order_by(Release.id))
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
