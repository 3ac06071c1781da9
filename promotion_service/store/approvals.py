"""Approvals and rejections of a digest for an environment."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..domain.actor import Actor
from ..errors import Forbidden, NotFound
from ..models import ApprovalRecord, Environment, Image, utcnow
from . import audit, images, projects, promotions

MANAGERS = ("release-manager", "admin")


def decide(session: Session, actor: Actor, image: Image, env: Environment, *, decision: str,
           comment: str | None = None,
           expires_in: int | None = None) -> tuple[ApprovalRecord, bool]:
    """Approve or reject; the same decision twice is the same record (created=False)."""
    images.check_scope(session, actor, image)
    policy = projects.policy_of(env)
    if actor.role not in policy.approver_roles:
        raise Forbidden(f"{env.name} takes approvals from {', '.join(policy.approver_roles)}; "
                        f"this token's role is {actor.role}")
    if decision == "approve" and policy.four_eyes and actor.name in {
            image.registered_by, image.triggered_by}:
        raise Forbidden(f"four-eyes: {actor.name} registered or triggered this image and may "
                        f"not approve it for {env.name}; someone else must")
    standing = session.scalar(select(ApprovalRecord).where(
        ApprovalRecord.image_id == image.id, ApprovalRecord.environment_id == env.id,
        ApprovalRecord.actor == actor.name, ApprovalRecord.withdrawn_at.is_(None)))
    if standing is not None and standing.decision == decision:
        return standing, False
    if standing is not None:
        _withdraw(session, actor, standing)
    now = utcnow()
    record = ApprovalRecord(image_id=image.id, environment_id=env.id, actor=actor.name,
                            role=actor.role, decision=decision, comment=comment,
                            created_at=now,
                            expires_at=now + timedelta(seconds=expires_in) if expires_in else None)
    session.add(record)
    session.flush()
    audit.append(session, actor, f"approval.{decision}", "image", image.id,
                 after={"approval_id": record.id, "environment": env.name,
                        "decision": decision, "comment": comment})
    if decision == "approve":
        promotions.consider_automatic(session, image, env, actor)
    return record, True


def withdraw(session: Session, actor: Actor, approval_id: int) -> ApprovalRecord:
    """Take back an approval or rejection (its author or a release manager)."""
    record = session.get(ApprovalRecord, approval_id)
    if record is None:
        raise NotFound(f"no approval with id {approval_id}")
    image = session.get(Image, record.image_id)
    images.check_scope(session, actor, image)
    if record.actor != actor.name and actor.role not in MANAGERS:
        raise Forbidden(f"only {record.actor} or a release manager may withdraw this "
                        f"{record.decision}")
    if record.withdrawn_at is None:
        _withdraw(session, actor, record)
        if record.decision == "reject":
            promotions.consider_automatic(session, image,
                                          session.get(Environment, record.environment_id), actor)
    return record


def standing(session: Session, image_id: int, environment_id: int) -> list[ApprovalRecord]:
    """Approvals and rejections not withdrawn."""
    return list(session.scalars(select(ApprovalRecord).where(
        ApprovalRecord.image_id == image_id, ApprovalRecord.environment_id == environment_id,
        ApprovalRecord.withdrawn_at.is_(None)).order_by(ApprovalRecord.id)))


def _withdraw(session: Session, actor: Actor, record: ApprovalRecord) -> None:
    record.withdrawn_at, record.withdrawn_by = utcnow(), actor.name
    session.flush()
    audit.append(session, actor, "approval.withdrawn", "image", record.image_id,
                 before={"approval_id": record.id, "decision": record.decision},
                 after={"withdrawn": True})
