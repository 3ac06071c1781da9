"""Deployments reported by deploy jobs, and their conditional state moves."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..db.models import Deployment
from ..domain.states import DeploymentState


def get(session: Session, deployment_id: int) -> Deployment | None:
    """The deployment with this id, if any."""
    return session.get(Deployment, deployment_id)


def latest(session: Session, release_id: int, environment_id: int) -> Deployment | None:
    """The release's latest deployment to the environment."""
    return session.scalar(select(Deployment).where(
        Deployment.release_id == release_id, Deployment.environment_id == environment_id)
        .order_by(Deployment.id.desc()).limit(1))


def started_before(session: Session, cutoff: datetime) -> list[Deployment]:
    """Deployments still `started` whose last report is older than the cutoff."""
    return list(session.scalars(select(Deployment).where(
        Deployment.state == DeploymentState.STARTED.value, Deployment.updated_at < cutoff)
        .order_by(Deployment.id)))


def add(session: Session, *, release_id: int, environment_id: int, state: str,
        job_url: str | None, message: str | None, actor: str,
        promotion_id: int | None, template_hash: str | None = None,
        record_id: str | None = None, rollback_of: str | None = None) -> Deployment:
    """A new deployment (flushed, so it has its id)."""
    deployment = Deployment(release_id=release_id, environment_id=environment_id, state=state,
                            job_url=job_url, message=message, actor=actor,
                            promotion_id=promotion_id, template_hash=template_hash,
                            record_id=record_id, rollback_of=rollback_of)
    session.add(deployment)
    session.flush()
    return deployment


def move(session: Session, deployment_id: int, sources: Iterable[DeploymentState],
         values: dict[str, Any]) -> bool:
    """Set the values only if the deployment is in one of the source states; True if moved."""
    return bool(session.execute(
        update(Deployment).where(
            Deployment.id == deployment_id,
            Deployment.state.in_([s.value for s in sources]))
        .values(**values).execution_options(synchronize_session=False)).rowcount)
