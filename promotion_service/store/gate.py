"""The gate: read the facts for an image and environment, let the domain decide."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..domain.policy import Approval, Decision, GateFacts, Reason, Stop, evaluate
from ..domain.states import IN_FLIGHT
from ..models import (
    ApprovalRecord,
    EmergencyStop,
    Environment,
    Image,
    Promotion,
    Scan,
    Verification,
    utcnow,
)
from . import projects


def facts(session: Session, image: Image, env: Environment, now: datetime | None = None,
          rollback: bool = False) -> GateFacts:
    """Everything the policy looks at, read in a handful of indexed queries."""
    now = now or utcnow()
    prev = projects.neighbour(session, env, -1)
    verified_at = None
    if prev is not None:
        last = session.execute(
            select(Verification.passed, Verification.created_at)
            .where(Verification.image_id == image.id, Verification.environment_id == prev.id)
            .order_by(Verification.id.desc()).limit(1)).first()
        verified_at = last.created_at if last is not None and last.passed else None
    scan = session.execute(select(Scan.counts, Scan.findings).where(Scan.image_id == image.id)
                           .order_by(Scan.id.desc()).limit(1)).first()
    approvals = session.execute(
        select(ApprovalRecord.actor, ApprovalRecord.role, ApprovalRecord.decision,
               ApprovalRecord.created_at, ApprovalRecord.expires_at, ApprovalRecord.comment)
        .where(ApprovalRecord.image_id == image.id, ApprovalRecord.environment_id == env.id,
               ApprovalRecord.withdrawn_at.is_(None))).all()
    stops = session.execute(
        select(EmergencyStop.reason, EmergencyStop.actor, EmergencyStop.created_at)
        .where(EmergencyStop.environment == env.name, EmergencyStop.lifted_at.is_(None))).all()
    return GateFacts(
        environment=env.name, now=now,
        previous_environment=prev.name if prev is not None else None,
        verified_in_previous_at=verified_at,
        revoked=image.revoked_at is not None, revoked_reason=image.revoked_reason or "",
        scan_counts=scan.counts if scan is not None else None,
        scan_findings=tuple(scan.findings or ()) if scan is not None else (),
        approvals=tuple(Approval(a.actor, a.role, a.decision, a.created_at, a.expires_at,
                                 a.comment or "") for a in approvals),
        image_authors=frozenset(x for x in (image.registered_by, image.triggered_by) if x),
        stops=tuple(Stop(s.reason, s.actor, s.created_at) for s in stops),
        rollback=rollback,
    )


def decide(session: Session, image: Image, env: Environment, now: datetime | None = None,
           rollback: bool = False) -> Decision:
    """The policy's answer for this image entering this environment now."""
    return evaluate(projects.policy_of(env), facts(session, image, env, now, rollback))


def for_deploy(session: Session, image: Image, env: Environment, promotion_id: int | None,
               pipeline_id: int | None) -> Decision:
    """The deploy job's gate; with a promotion, the first pipeline to ask claims it."""
    promotion = session.get(Promotion, promotion_id) if promotion_id is not None else None
    if promotion_id is not None:
        problem = _promotion_problem(promotion, promotion_id, image, env)
        if problem is not None:
            return Decision(False, (problem,))
    decision = decide(session, image, env, rollback=promotion is not None
                      and promotion.kind == "rollback")
    if not decision.allowed or promotion is None or pipeline_id is None:
        return decision
    claimed = session.execute(
        update(Promotion).where(Promotion.id == promotion.id,
                                (Promotion.pipeline_id.is_(None))
                                | (Promotion.pipeline_id == pipeline_id))
        .values(pipeline_id=pipeline_id).execution_options(synchronize_session=False)).rowcount
    if claimed:
        return decision
    owner = session.scalar(select(Promotion.pipeline_id).where(Promotion.id == promotion.id))
    return Decision(False, (Reason(
        "promotion_claimed",
        f"promotion {promotion.id} is being deployed by pipeline {owner}, not {pipeline_id}",
        "nothing to do here: the other pipeline deploys it (request a new promotion if it fails)",
        {"pipeline_id": owner}),))


def _promotion_problem(promotion: Promotion | None, promotion_id: int, image: Image,
                       env: Environment) -> Reason | None:
    if promotion is None:
        return Reason("promotion_unknown", f"there is no promotion {promotion_id}",
                      "pass the CD_PROMOTION_ID the service gave this pipeline")
    if promotion.image_id != image.id or promotion.environment_id != env.id:
        return Reason("promotion_mismatch",
                      f"promotion {promotion_id} is for another image or environment",
                      "deploy the image and environment named by the promotion")
    if promotion.state not in IN_FLIGHT:
        return Reason("promotion_closed", f"promotion {promotion_id} is {promotion.state}",
                      "request a new promotion")
    return None
