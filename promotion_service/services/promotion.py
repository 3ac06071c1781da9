"""Promotions: requested by hand or automatically, moved through their states (checked in
SQL), each with the outbox row that starts its pipeline."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..db import write_transaction
from ..db.listing import Extended, Listing
from ..db.models import Environment, Image, Project, Promotion, utcnow
from ..domain.actor import Actor
from ..domain.gitlab_events import (
    ENVIRONMENT_VARIABLE,
    IMAGE_VARIABLE,
    PROMOTION_VARIABLE,
    ROLLBACK_VARIABLE,
)
from ..domain.policy import EnvironmentPolicy
from ..domain.states import PROMOTION_TRANSITIONS, PromotionState, illegal_move, promotion_sources
from ..errors import Conflict, Forbidden, Invalid, NotFound, Refused
from ..store import audit, images, outbox, projects, promotions, releases, verifications
from . import gate, holds, lookups
from .projects import policy_of

FORWARD = (PromotionState.DEPLOYING, PromotionState.DEPLOYED, PromotionState.VERIFIED)


def as_dict(p: Promotion) -> dict[str, Any]:
    """The audit log's view of a promotion."""
    return {"id": p.id, "image_id": p.image_id, "environment_id": p.environment_id,
            "state": p.state, "kind": p.kind, "pipeline_id": p.pipeline_id,
            "failure_message": p.failure_message}


def get(session: Session, actor: Actor, promotion_id: int) -> Extended:
    """One promotion with its image and environment names (404 if there is none)."""
    found = promotions.get_named(session, promotion_id)
    if found is None:
        raise NotFound(f"no promotion with id {promotion_id}")
    lookups.check_image_scope(session, actor, images.get(session, found.image_id))
    return found


def listing(session: Session, actor: Actor, **filters: Any) -> Listing:
    """Promotions, newest first, filtered by project, environment, state or image (a
    project-scoped token sees its project's)."""
    return promotions.listing(session, **lookups.scoped_filters(actor, filters))


def request(session: Session, actor: Actor, *, repository: str, digest: str,
            environment: str, reason: str | None = None) -> tuple[Extended, bool]:
    """A manual promotion: idempotent while one is in flight, refused with every reason."""
    with write_transaction(session):
        image, env = lookups.image_and_environment(session, repository, digest, environment)
        promotion, created = _request(session, actor, image, env, reason)
    return promotions.named(promotion, image, env), created


def _request(session: Session, actor: Actor, image: Image, env: Environment,
             reason: str | None) -> tuple[Promotion, bool]:
    lookups.check_scope(actor, session.get(Project, image.project_id).path)
    if env.position == 0:
        raise Invalid.field("environment", f"{env.name} is the first environment: images reach "
                            "it from their own pipeline (use rollback to go back)")
    existing = promotions.in_flight(session, image.id, env.id)
    if existing is not None:
        return existing, False
    live = releases.current(session, env.id)
    if live is not None and live.image_id == image.id and live.verified_at is not None:
        done = promotions.latest(session, image.id, env.id, PromotionState.VERIFIED)
        if done is not None:  # already live and verified there: nothing to do
            return done, False
    decision = gate.decide(session, image, env)
    if not decision.allowed:
        raise Refused(f"{image.repository}@{image.digest} may not be promoted to {env.name}",
                      reasons=[r.to_dict() for r in decision.reasons])
    promotion, created = create(session, actor, image, env, "manual", reason)
    if created and live is not None and live.image_id > image.id:
        holds.set_hold(session, actor, env,
                       f"manual promotion of older image {image.id} by {actor.name}")
    return promotion, created


def create(session: Session, actor: Actor, image: Image, env: Environment, kind: str,
           reason: str | None, *, release_id: str | None = None,
           trigger: bool = True) -> tuple[Promotion, bool]:
    """Insert the promotion and the outbox row that starts its pipeline together (no row when a
    pipeline already runs it: trigger=False); the database keeps it unique."""
    project = session.get(Project, image.project_id)
    try:
        with session.begin_nested():
            promotion = promotions.add(session, image_id=image.id, environment_id=env.id,
                                       kind=kind, requested_by=actor.name, reason=reason,
                                       release_id=release_id)
            if trigger:
                outbox.enqueue(session, "trigger_pipeline",
                               trigger_payload(project, env, image, promotion),
                               promotion_id=promotion.id)
            session.flush()
    except IntegrityError:
        existing = promotions.in_flight(session, image.id, env.id)
        if existing is None:
            raise
        return existing, False
    audit.append(session, actor, "promotion.requested", "promotion", promotion.id,
                 after=as_dict(promotion) | {"reason": reason})
    return promotion, True


def trigger_payload(project: Project, env: Environment, image: Image,
                    promotion: Promotion) -> dict[str, Any]:
    """What the dispatcher needs to start the downstream pipeline (a rollback's names the
    release to restore: its rollback job runs `docker-cd rollback --to $CD_ROLLBACK_TO`)."""
    variables = {IMAGE_VARIABLE: f"{image.repository}@{image.digest}",
                 ENVIRONMENT_VARIABLE: env.name, PROMOTION_VARIABLE: str(promotion.id)}
    if promotion.kind == "rollback" and promotion.release_id:
        variables[ROLLBACK_VARIABLE] = promotion.release_id
    return {"project_path": project.path, "gitlab_project_id": project.gitlab_id,
            "environment": env.name, "variables": variables}


def move(session: Session, actor: Actor, promotion_id: int, state: str,
         message: str | None = None) -> Extended:
    """A state move a deploy job reports (an illegal one is a 409 naming the legal ones)."""
    with write_transaction(session):
        promotion = promotions.get(session, promotion_id)
        if promotion is None:
            raise NotFound(f"no promotion with id {promotion_id}")
        image = images.get(session, promotion.image_id)
        lookups.check_image_scope(session, actor, image)
        env = session.get(Environment, promotion.environment_id)
        lookups.check_job_environment(actor, env.name)
        mine = actor.pipeline.pipeline_id if actor.pipeline is not None else None
        if mine is not None and promotion.pipeline_id not in (None, mine):
            raise Forbidden(f"promotion {promotion_id} is deployed by pipeline "
                            f"{promotion.pipeline_id}; this job's pipeline {mine} may not "
                            "move it")
        promotion = transition(session, promotion_id, state, actor, message)
    return promotions.named(promotion, image, env)


def transition(session: Session, promotion_id: int, target: str | PromotionState,
               actor: Actor, message: str | None = None) -> Promotion:
    """Move the promotion, only from a legal state (a conditional UPDATE); re-doing is a no-op."""
    target = PromotionState(target)
    values: dict[str, Any] = {"state": target.value, "updated_at": utcnow()}
    if target is PromotionState.FAILED:
        values["failure_message"] = message
    moved = promotions.move(session, promotion_id, promotion_sources(target), values)
    promotion = promotions.get(session, promotion_id, fresh=True)
    if promotion is None:
        raise NotFound(f"no promotion with id {promotion_id}")
    if not moved:
        if promotion.state == target.value:
            return promotion
        allowed = frozenset(s.value for s in PROMOTION_TRANSITIONS[PromotionState(promotion.state)])
        raise Conflict(illegal_move(f"promotion {promotion_id}", promotion.state, target.value,
                                    allowed))
    audit.append(session, actor, f"promotion.{target.value}", "promotion", promotion_id,
                 after=as_dict(promotion) | ({"message": message} if message else {}))
    return promotion


def mark_triggered(session: Session, promotion_id: int, pipeline_id: int | None,
                   pipeline_url: str | None, actor: Actor) -> Promotion:
    """The downstream pipeline started: record it (keeping any pipeline that claimed it)."""
    with write_transaction(session):
        promotion = promotions.get(session, promotion_id)
        if promotion is None:
            raise NotFound(f"no promotion with id {promotion_id}")
        if promotion.state == PromotionState.REQUESTED.value:
            transition(session, promotion_id, PromotionState.TRIGGERED, actor)
        promotions.record_pipeline(session, promotion_id, pipeline_id, pipeline_url)
        return promotions.get(session, promotion_id, fresh=True)  # type: ignore[return-value]


def mark_failed(session: Session, promotion_id: int, message: str, actor: Actor) -> Promotion:
    """The promotion cannot succeed; say why (shown in the API and the audit log)."""
    with write_transaction(session):
        return transition(session, promotion_id, PromotionState.FAILED, actor, message)


def advance(session: Session, promotion: Promotion, target: PromotionState,
            actor: Actor) -> Promotion:
    """Walk forward through deploying/deployed/verified up to target, skipping none."""
    for step in FORWARD[: FORWARD.index(target) + 1]:
        state = PromotionState(promotion.state)
        if state in (PromotionState.REQUESTED, PromotionState.TRIGGERED) or (
                state in FORWARD and FORWARD.index(state) < FORWARD.index(step)):
            promotion = transition(session, promotion.id, step, actor)
    return promotion


def supersede_older(session: Session, env_id: int, image_id: int, actor: Actor) -> list[int]:
    """Promotions of older images not yet deploying are overtaken by this deployment."""
    stale = promotions.waiting_of_older_images(session, env_id, image_id)
    for promotion_id in stale:
        transition(session, promotion_id, PromotionState.SUPERSEDED, actor,
                   f"image {image_id} was deployed to the environment first")
    return stale


def wants_automatic(policy: EnvironmentPolicy) -> bool:
    """Does this environment promote by itself once the gate allows?"""
    return policy.auto_promote or (policy.promote_on_approval and policy.required_approvals > 0)


def consider_automatic(session: Session, image: Image, env: Environment, actor: Actor,
                       now: datetime | None = None) -> Promotion | None:
    """Promote now if policy wants it, nothing holds it back and the gate allows it."""
    policy = policy_of(env)
    if env.position == 0 or not wants_automatic(policy) or env.hold_at is not None:
        return None
    if image.revoked_at is not None or promotions.count_of(session, image.id, env.id):
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
    with write_transaction(session):
        for env in projects.later_environments_without_hold(session):
            prev = projects.neighbour(session, env, -1)
            if prev is None or not wants_automatic(policy_of(env)):
                continue
            image_id = verifications.latest_passed_image(session, prev.id)
            if image_id is None:
                continue
            promotion = consider_automatic(session, images.get(session, image_id), env, actor,
                                           now)
            if promotion is not None:
                created.append(promotion.id)
    return created
