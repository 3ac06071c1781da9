"""Approvals and rejections of a digest for an environment."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ..db.models import ApprovalRecord


def get(session: Session, approval_id: int) -> ApprovalRecord | None:
    """The approval or rejection with this id, if any."""
    return session.get(ApprovalRecord, approval_id)


def standing_of(session: Session, release_id: int, environment_id: int,
                actor: str) -> ApprovalRecord | None:
    """This person's decision on the image for the environment, unless withdrawn."""
    return session.scalar(select(ApprovalRecord).where(
        ApprovalRecord.release_id == release_id, ApprovalRecord.environment_id == environment_id,
        func.lower(ApprovalRecord.actor) == actor.casefold(),
        ApprovalRecord.withdrawn_at.is_(None)).order_by(ApprovalRecord.id).limit(1))


def standing(session: Session, release_id: int, environment_id: int) -> list[ApprovalRecord]:
    """Approvals and rejections not withdrawn, oldest first."""
    return list(session.scalars(select(ApprovalRecord).where(
        ApprovalRecord.release_id == release_id, ApprovalRecord.environment_id == environment_id,
        ApprovalRecord.withdrawn_at.is_(None)).order_by(ApprovalRecord.id)))


def standing_by_token(session: Session, token_id: int,
                      decision: str = "approve") -> list[ApprovalRecord]:
    """Decisions given with this token that still stand, oldest first."""
    return list(session.scalars(select(ApprovalRecord).where(
        ApprovalRecord.token_id == token_id, ApprovalRecord.decision == decision,
        ApprovalRecord.withdrawn_at.is_(None)).order_by(ApprovalRecord.id)))


def add(session: Session, *, release_id: int, environment_id: int, actor: str, role: str,
        decision: str, comment: str | None, created_at: datetime,
        expires_at: datetime | None, template_hash: str | None = None,
        token_id: int | None = None, given_in: str = "service") -> ApprovalRecord:
    """A new decision (flushed: one standing decision per person, image and environment)."""
    record = ApprovalRecord(release_id=release_id, environment_id=environment_id, actor=actor,
                            role=role, decision=decision, comment=comment,
                            created_at=created_at, expires_at=expires_at,
                            template_hash=template_hash, token_id=token_id,
                            given_in=given_in)
    session.add(record)
    session.flush()
    return record


def bind_template(session: Session, release_id: int, environment_id: int,
                  template_hash: str) -> None:
    """Standing approvals given without a template are for the one they let deploy."""
    session.execute(update(ApprovalRecord).where(
        ApprovalRecord.release_id == release_id, ApprovalRecord.environment_id == environment_id,
        ApprovalRecord.withdrawn_at.is_(None), ApprovalRecord.decision == "approve",
        ApprovalRecord.template_hash.is_(None)).values(template_hash=template_hash))
