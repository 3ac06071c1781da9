"""Approvals and rejections of a digest for an environment."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..db.models import ApprovalRecord


def get(session: Session, approval_id: int) -> ApprovalRecord | None:
    """The approval or rejection with this id, if any."""
    return session.get(ApprovalRecord, approval_id)


def standing_of(session: Session, image_id: int, environment_id: int,
                actor: str) -> ApprovalRecord | None:
    """This actor's decision on the image for the environment, unless withdrawn."""
    return session.scalar(select(ApprovalRecord).where(
        ApprovalRecord.image_id == image_id, ApprovalRecord.environment_id == environment_id,
        ApprovalRecord.actor == actor, ApprovalRecord.withdrawn_at.is_(None)))


def standing(session: Session, image_id: int, environment_id: int) -> list[ApprovalRecord]:
    """Approvals and rejections not withdrawn, oldest first."""
    return list(session.scalars(select(ApprovalRecord).where(
        ApprovalRecord.image_id == image_id, ApprovalRecord.environment_id == environment_id,
        ApprovalRecord.withdrawn_at.is_(None)).order_by(ApprovalRecord.id)))


def add(session: Session, *, image_id: int, environment_id: int, actor: str, role: str,
        decision: str, comment: str | None, created_at: datetime,
        expires_at: datetime | None, template_hash: str | None = None) -> ApprovalRecord:
    """A new decision (flushed: one standing decision per actor, image and environment)."""
    record = ApprovalRecord(image_id=image_id, environment_id=environment_id, actor=actor,
                            role=role, decision=decision, comment=comment,
                            created_at=created_at, expires_at=expires_at,
                            template_hash=template_hash)
    session.add(record)
    session.flush()
    return record


def bind_template(session: Session, image_id: int, environment_id: int,
                  template_hash: str) -> None:
    """Standing approvals given without a template are for the one they let deploy."""
    session.execute(update(ApprovalRecord).where(
        ApprovalRecord.image_id == image_id, ApprovalRecord.environment_id == environment_id,
        ApprovalRecord.withdrawn_at.is_(None), ApprovalRecord.decision == "approve",
        ApprovalRecord.template_hash.is_(None)).values(template_hash=template_hash))
