"""The gate: read the facts for an image and environment, let the domain decide."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, select, update
from sqlalchemy.orm import Session

from ..domain.policy import Decision, Reason, evaluate
from ..domain.states import IN_FLIGHT
from ..models import Environment, Image, Promotion, utcnow
from . import gate_query, images, projects
from .gate_query import GateRow


def lookup(conn: Session | Connection, repository: str, digest: str,
           environment: str) -> GateRow:
    """The gate's row for an image reference and environment name, or a 404 that helps."""
    row = gate_query.load(conn, environment, repository=repository, digest=digest)
    if row is None:
        raise images.not_registered(repository, digest)
    if row.environment_id is None:
        if isinstance(conn, Session):
            projects.get_environment(conn, row.project_id, environment)  # raises, naming them
        with Session(bind=conn) as session:  # a Core connection: the ORM only for this 404
            projects.get_environment(session, row.project_id, environment)
    return row


def for_image(conn: Session | Connection, row: GateRow, rollback: bool = False) -> Decision:
    """The policy's answer for the looked-up image now (no promotion involved)."""
    return evaluate(row.policy, row.facts(conn, utcnow(), rollback))


def decide(session: Session, image: Image, env: Environment,
           now: datetime | None = None) -> Decision:
    """The policy's answer for this image entering this environment now."""
    row = gate_query.load(session, env.name, image_id=image.id)
    return evaluate(row.policy, row.facts(session, now or utcnow()))


def for_deploy(session: Session, row: GateRow, promotion_id: int | None = None,
               pipeline_id: int | None = None) -> Decision:
    """The deploy job's gate; with a promotion, the first pipeline to ask claims it."""
    promotion = session.get(Promotion, promotion_id) if promotion_id is not None else None
    if promotion_id is not None:
        problem = _promotion_problem(promotion, promotion_id, row)
        if problem is not None:
            return Decision(False, (problem,))
    decision = for_image(session, row, promotion is not None and promotion.kind == "rollback")
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


def _promotion_problem(promotion: Promotion | None, promotion_id: int,
                       row: GateRow) -> Reason | None:
    if promotion is None:
        return Reason("promotion_unknown", f"there is no promotion {promotion_id}",
                      "pass the CD_PROMOTION_ID the service gave this pipeline")
    if promotion.image_id != row.image_id or promotion.environment_id != row.environment_id:
        return Reason("promotion_mismatch",
                      f"promotion {promotion_id} is for another image or environment",
                      "deploy the image and environment named by the promotion")
    if promotion.state not in IN_FLIGHT:
        return Reason("promotion_closed", f"promotion {promotion_id} is {promotion.state}",
                      "request a new promotion")
    return None
