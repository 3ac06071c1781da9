"""Promotions: request, automatic promotion, state moves (checked in SQL), the outbox."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..domain.actor import Actor
from ..domain.gitlab_events import ENVIRONMENT_VARIABLE, IMAGE_VARIABLE, PROMOTION_VARIABLE
from ..domain.policy import EnvironmentPolicy
from ..domain.states import (
    IN_FLIGHT,
    PROMOTION_TRANSITIONS,
    PromotionState,
    illegal_move,
    promotion_sources,
)
from ..errors import Conflict, Invalid, NotFound, Refused
from ..models import Environment, Image, Outbox, Project, Promotion, Verification, utcnow
from . import audit, gate, projects, releases

P = PromotionState
FORWARD = (P.DEPLOYING, P.DEPLOYED, P.VERIFIED)


def as_dict(p: Promotion) -> dict[str, Any]:
    """The audit/API view of a promotion."""
    return {"id": p.id, "image_id": p.image_id, "environment_id": p.environment_id,
            "state": p.state, "kind": p.kind, "pipeline_id": p.pipeline_id,
            "failure_message": p.failure_message}


def get(session: Session, promotion_id: int) -> Promotion:
    """The promotion or 404."""
    promotion = session.get(Promotion, promotion_id)
    if promotion is None:
        raise NotFound(f"no promotion with id {promotion_id}")
    return promotion


def in_flight(session: Session, image_id: int, environment_id: int) -> Promotion | None:
    """The one promotion of the image into the environment still on its way, if any."""
    return session.scalar(select(Promotion).where(
        Promotion.image_id == image_id, Promotion.environment_id == environment_id,
        Promotion.state.in_([s.value for s in IN_FLIGHT])))


def request(session: Session, actor: Actor, image: Image, env: Environment,
            reason: str | None = None) -> tuple[Promotion, bool]:
    """A manual promotion: idempotent while one is in flight, refused with every reason."""
    project = session.get(Project, image.project_id)
    projects.check_scope(actor, project.path)
    if env.position == 0:
        raise Invalid.field("environment", f"{env.name} is the first environment: images reach "
                            "it from their own pipeline (use rollback to go back)")
    existing = in_flight(session, image.id, env.id)
    if existing is not None:
        return existing, False
    live = releases.current(session, env.id)
    if live is not None and live.image_id == image.id and live.verified_at is not None:
        done = session.scalar(select(Promotion).where(
            Promotion.image_id == image.id, Promotion.environment_id == env.id,
            Promotion.state == P.VERIFIED.value).order_by(Promotion.id.desc()).limit(1))
        if done is not None:  # already live and verified there: nothing to do
            return done, False
    decision = gate.decide(session, image, env)
    if not decision.allowed:
        raise Refused(f"{image.repository}@{image.digest} may not be promoted to {env.name}",
                      reasons=[r.to_dict() for r in decision.reasons])
    promotion, created = create(session, actor, image, env, "manual", reason)
    if created and live is not None and live.image_id > image.id:
        releases.set_hold(session, actor, env,
                          f"manual promotion of older image {image.id} by {actor.name}")
    return promotion, created


def create(session: Session, actor: Actor, image: Image, env: Environment, kind: str,
           reason: str | None) -> tuple[Promotion, bool]:
    """Insert the promotion and its outbox row together; the database keeps it unique."""
    project = session.get(Project, image.project_id)
    try:
        with session.begin_nested():
            promotion = Promotion(image_id=image.id, environment_id=env.id, kind=kind,
                                  state=P.REQUESTED.value, requested_by=actor.name,
                                  reason=reason)
            session.add(promotion)
            session.flush()
            session.add(Outbox(promotion_id=promotion.id, kind="trigger_pipeline",
                               payload=trigger_payload(project, env, image, promotion)))
            session.flush()
    except IntegrityError:
        existing = in_flight(session, image.id, env.id)
        if existing is None:
            raise
        return existing, False
    audit.append(session, actor, "promotion.requested", "promotion", promotion.id,
                 after=as_dict(promotion) | {"reason": reason})
    return promotion, True


def trigger_payload(project: Project, env: Environment, image: Image,
                    promotion: Promotion) -> dict[str, Any]:
    """What the dispatcher needs to start the downstream pipeline."""
    return {
        "project_path": project.path, "gitlab_project_id": project.gitlab_id,
        "environment": env.name,
        "variables": {IMAGE_VARIABLE: f"{image.repository}@{image.digest}",
                      ENVIRONMENT_VARIABLE: env.name,
                      PROMOTION_VARIABLE: str(promotion.id)},
    }


def transition(session: Session, promotion_id: int, target: str | PromotionState,
               actor: Actor, message: str | None = None) -> Promotion:
    """Move the promotion, only from a legal state (a conditional UPDATE); re-doing is a no-op."""
    target = P(target)
    values: dict[str, Any] = {"state": target.value, "updated_at": utcnow()}
    if target is P.FAILED:
        values["failure_message"] = message
    moved = session.execute(
        update(Promotion)
        .where(Promotion.id == promotion_id,
               Promotion.state.in_([s.value for s in promotion_sources(target)]))
        .values(**values).execution_options(synchronize_session=False)).rowcount
    promotion = session.get(Promotion, promotion_id, populate_existing=True)
    if promotion is None:
        raise NotFound(f"no promotion with id {promotion_id}")
    if not moved:
        if promotion.state == target.value:
            return promotion
        allowed = frozenset(s.value for s in PROMOTION_TRANSITIONS[P(promotion.state)])
        raise Conflict(illegal_move(f"promotion {promotion_id}", promotion.state, target.value,
                                    allowed))
    audit.append(session, actor, f"promotion.{target.value}", "promotion", promotion_id,
                 after=as_dict(promotion) | ({"message": message} if message else {}))
    return promotion


def mark_triggered(session: Session, promotion_id: int, pipeline_id: int | None,
                   pipeline_url: str | None, actor: Actor) -> Promotion:
    """The downstream pipeline started: record it (keeping any pipeline that claimed it)."""
    promotion = get(session, promotion_id)
    if promotion.state == P.REQUESTED.value:
        promotion = transition(session, promotion_id, P.TRIGGERED, actor)
    session.execute(update(Promotion).where(Promotion.id == promotion_id,
                                            Promotion.pipeline_id.is_(None))
                    .values(pipeline_id=pipeline_id)
                    .execution_options(synchronize_session=False))
    session.execute(update(Promotion).where(Promotion.id == promotion_id,
                                            Promotion.pipeline_id == pipeline_id)
                    .values(pipeline_url=pipeline_url)
                    .execution_options(synchronize_session=False))
    return session.get(Promotion, promotion_id, populate_existing=True)


def mark_state(session: Session, promotion_id: int, new_state: str, actor: Actor,
               message: str | None = None) -> Promotion:
    """Any legal move (for webhooks and the dispatcher)."""
    return transition(session, promotion_id, new_state, actor, message)


def mark_failed(session: Session, promotion_id: int, message: str, actor: Actor) -> Promotion:
    """The promotion cannot succeed; say why (shown in the API and the audit log)."""
    return transition(session, promotion_id, P.FAILED, actor, message)


def advance(session: Session, promotion: Promotion, target: PromotionState,
            actor: Actor) -> Promotion:
    """Walk forward through deploying/deployed/verified up to target, skipping none."""
    for step in FORWARD[: FORWARD.index(target) + 1]:
        state = P(promotion.state)
        if state in (P.REQUESTED, P.TRIGGERED) or (
                state in FORWARD and FORWARD.index(state) < FORWARD.index(step)):
            promotion = transition(session, promotion.id, step, actor)
    return promotion


def supersede_older(session: Session, env_id: int, image_id: int, actor: Actor) -> list[int]:
    """Promotions of older images not yet deploying are overtaken by this deployment."""
    stale = session.scalars(select(Promotion.id).where(
        Promotion.environment_id == env_id, Promotion.image_id < image_id,
        Promotion.state.in_([P.REQUESTED.value, P.TRIGGERED.value]))).all()
    for promotion_id in stale:
        transition(session, promotion_id, P.SUPERSEDED, actor,
                   f"image {image_id} was deployed to the environment first")
    return list(stale)


def wants_automatic(policy: EnvironmentPolicy) -> bool:
    """Does this environment promote by itself once the gate allows?"""
    return policy.auto_promote or (policy.promote_on_approval and policy.required_approvals > 0)


def consider_automatic(session: Session, image: Image, env: Environment, actor: Actor,
                       now: datetime | None = None) -> Promotion | None:
    """Promote now if policy wants it, nothing holds it back and the gate allows it."""
    policy = projects.policy_of(env)
    if env.position == 0 or not wants_automatic(policy) or env.hold_at is not None:
        return None
    if image.revoked_at is not None or session.scalar(select(func.count(Promotion.id)).where(
            Promotion.image_id == image.id, Promotion.environment_id == env.id)):
        return None
    live = releases.current(session, env.id)
    if live is not None and live.image_id >= image.id:
        return None
    if not gate.decide(session, image, env, now).allowed:
        return None
    kind = "approval" if policy.required_approvals else "auto"
    promotion, created = create(session, actor, image, env, kind, f"{kind} promotion")
    return promotion if created else None


def reevaluate_waiting(session: Session, now: datetime | None = None) -> list[int]:
    """Promote what became allowed with time (soak, freeze ends); the worker calls this."""
    actor = Actor.system("promotion-service")
    created = []
    for env in session.scalars(select(Environment).where(Environment.position > 0,
                                                         Environment.hold_at.is_(None))).all():
        prev = projects.neighbour(session, env, -1)
        if prev is None or not wants_automatic(projects.policy_of(env)):
            continue
        image_id = session.scalar(select(Verification.image_id).where(
            Verification.environment_id == prev.id, Verification.passed.is_(True))
            .order_by(Verification.id.desc()).limit(1))
        if image_id is None:
            continue
        promotion = consider_automatic(session, session.get(Image, image_id), env, actor, now)
        if promotion is not None:
            created.append(promotion.id)
    return created

