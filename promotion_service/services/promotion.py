"""Promotions of releases: requested by hand or automatically, moved through their states
(checked in SQL), each with the outbox row that starts its pipeline."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..db import write_transaction
from ..db.listing import Extended, Listing
from ..db.models import Environment, Project, Promotion, Release, utcnow
from ..domain.actor import Actor
from ..domain.gitlab_events import ENVIRONMENT_VARIABLE, PROMOTION_VARIABLE, ROLLBACK_VARIABLE
from ..domain.policy import EnvironmentPolicy
from ..domain.releases import members_from, trigger_variables
from ..domain.states import PROMOTION_TRANSITIONS, PromotionState, illegal_move, promotion_sources
from ..errors import Conflict, Forbidden, Invalid, NotFound, Refused
from ..store import audit, outbox, projects, promotions, releases, rollouts, verifications
from . import gate, holds, lookups
from .projects import policy_of

FORWARD = (PromotionState.DEPLOYING, PromotionState.DEPLOYED, PromotionState.VERIFIED)


def as_dict(p: Promotion) -> dict[str, Any]:
    """The audit log's view of a promotion."""
    return {"id": p.id, "release_id": p.release_id, "environment_id": p.environment_id,
            "state": p.state, "kind": p.kind, "pipeline_id": p.pipeline_id,
            "failure_message": p.failure_message}


def get(session: Session, actor: Actor, promotion_id: int) -> Extended:
    """One promotion with its release and environment names (404 if there is none)."""
    found = promotions.get_named(session, promotion_id)
    if found is None:
        raise NotFound(f"no promotion with id {promotion_id}")
    lookups.check_release_scope(session, actor, releases.get(session, found.release_id))
    return found


def listing(session: Session, actor: Actor, **filters: Any) -> Listing:
    """Promotions, newest first, filtered by project, environment, state, release or image (a
    project-scoped token sees its project's)."""
    return promotions.listing(session, **lookups.scoped_filters(actor, filters))


def request(session: Session, actor: Actor, *, environment: str, reason: str | None = None,
            **names: Any) -> tuple[Extended, bool]:
    """A manual promotion of a release (or an image's one-member release): idempotent while
    one is in flight, refused with every reason."""
    with write_transaction(session):
        release, env = lookups.release_and_environment(session, environment, **names)
        promotion, created = _request(session, actor, release, env, reason)
    return promotions.named(promotion, release, env), created


def _request(session: Session, actor: Actor, release: Release, env: Environment,
             reason: str | None) -> tuple[Promotion, bool]:
    lookups.check_scope(actor, session.get(Project, release.project_id).path)
    if env.position == 0:
        raise Invalid.field("environment", f"{env.name} is the first environment: releases "
                            "reach it from their own pipeline (use rollback to go back)")
    existing = promotions.in_flight(session, release.id, env.id)
    if existing is not None:
        return existing, False
    live = rollouts.current(session, env.id)
    if live is not None and live.release_id == release.id and live.verified_at is not None:
        done = promotions.latest(session, release.id, env.id, PromotionState.VERIFIED)
        if done is not None:  # already live and verified there: nothing to do
            return done, False
    decision = gate.decide(session, release, env)
    if not decision.allowed:
        raise Refused(f"{release.label} may not be promoted to {env.name}",
                      reasons=[r.to_dict() for r in decision.reasons])
    promotion, created = create(session, actor, release, env, "manual", reason,
                                noted=_roll_forward(session, release, env, reason))
    if created and live is not None and live.release_id > release.id:
        holds.set_hold(session, actor, env,
                       f"manual promotion of older release {release.id} by {actor.name}")
    return promotion, created


def _roll_forward(session: Session, release: Release, env: Environment,
                  reason: str | None) -> dict[str, Any]:
    """A release rolled back out of the environment goes in again only by an explicit
    promotion with a reason; the audit entry names the rollback it undoes."""
    found = rollouts.rolled_back_out(session, env, release.id)
    if found is None:
        return {}
    rollout, gone = found
    if not (reason or "").strip():
        raise Invalid.field("reason", f"release {release.id} was {gone.described}; promoting "
                            "it there again (a roll-forward) needs a reason")
    return {"roll_forward": {"rollout_id": rollout.id, "rolled_back_by": gone.by,
                             "rolled_back_reason": gone.reason}}


def create(session: Session, actor: Actor, release: Release, env: Environment, kind: str,
           reason: str | None, *, record_id: str | None = None, trigger: bool = True,
           noted: dict[str, Any] | None = None) -> tuple[Promotion, bool]:
    """Insert the promotion and the outbox row that starts its pipeline together (no row when a
    pipeline already runs it: trigger=False); the database keeps it unique. `noted` goes into
    the audit entry."""
    project = session.get(Project, release.project_id)
    try:
        with session.begin_nested():
            promotion = promotions.add(session, release_id=release.id, environment_id=env.id,
                                       kind=kind, requested_by=actor.name, reason=reason,
                                       record_id=record_id)
            if trigger:
                outbox.enqueue(session, "trigger_pipeline",
                               trigger_payload(project, env, release, promotion),
                               promotion_id=promotion.id)
            session.flush()
    except IntegrityError:
        existing = promotions.in_flight(session, release.id, env.id)
        if existing is None:
            raise
        return existing, False
    audit.append(session, actor, "promotion.requested", "promotion", promotion.id,
                 after=as_dict(promotion) | {"reason": reason} | (noted or {}))
    return promotion, True


def trigger_payload(project: Project, env: Environment, release: Release,
                    promotion: Promotion) -> dict[str, Any]:
    """What the dispatcher needs to start the downstream pipeline: CD_RELEASE_ID, each
    member's CD_IMAGE_<NAME> (and CD_IMAGE for a release of one image), the release's
    CD_RELEASE_COMMIT and CD_RELEASE_TEMPLATE_HASH; a rollback's names the record to restore:
    its rollback job runs `docker-cd rollback --to $CD_ROLLBACK_TO`."""
    variables = trigger_variables(release.id, members_from(
        {"name": m.name, "repository": m.repository, "digest": m.digest, "built": m.built}
        for m in release.members), release.commit_sha, release.template_hash)
    variables |= {ENVIRONMENT_VARIABLE: env.name, PROMOTION_VARIABLE: str(promotion.id)}
    if promotion.kind == "rollback" and promotion.record_id:
        variables[ROLLBACK_VARIABLE] = promotion.record_id
    return {"project_path": project.path, "gitlab_project_id": project.gitlab_id,
            "environment": env.name, "variables": variables}


def move(session: Session, actor: Actor, promotion_id: int, state: str,
         message: str | None = None) -> Extended:
    """A state move a deploy job reports (an illegal one is a 409 naming the legal ones)."""
    with write_transaction(session):
        promotion = promotions.get(session, promotion_id)
        if promotion is None:
            raise NotFound(f"no promotion with id {promotion_id}")
        release = releases.get(session, promotion.release_id)
        lookups.check_release_scope(session, actor, release)
        env = session.get(Environment, promotion.environment_id)
        lookups.check_job_environment(actor, env.name)
        mine = actor.pipeline.pipeline_id if actor.pipeline is not None else None
        if mine is not None and promotion.pipeline_id not in (None, mine):
            raise Forbidden(f"promotion {promotion_id} is deployed by pipeline "
                            f"{promotion.pipeline_id}; this job's pipeline {mine} may not "
                            "move it")
        promotion = transition(session, promotion_id, state, actor, message)
    return promotions.named(promotion, release, env)


def transition(session: Session, promotion_id: int, target: str | PromotionState,
               actor: Actor, message: str | None = None) -> Promotion:
    """Move the promotion, only from a legal state (a conditional UPDATE); re-doing is a no-op."""
    target = PromotionState(target)
    values: dict[str, Any] = {"state": target.value, "updated_at": utcnow()}
    if target is PromotionState.FAILED:
        values["failure_message"] = message
    moved = promotions.move(session, promotion_id, promotion_sources(target), values)
    if not moved:
        return _refuse_move(session, promotion_id, target)
    promotion = promotions.get(session, promotion_id, fresh=True)
    audit.append(session, actor, f"promotion.{target.value}", "promotion", promotion_id,
                 after=as_dict(promotion) | ({"message": message} if message else {}))
    return promotion


def _refuse_move(session: Session, promotion_id: int, target: PromotionState) -> Promotion:
    """A move that did not happen: the promotion as it is when it is already there (re-doing
    is a no-op), else a 409 naming the legal moves (a 404 when there is none)."""
    promotion = promotions.get(session, promotion_id, fresh=True)
    if promotion is None:
        raise NotFound(f"no promotion with id {promotion_id}")
    if promotion.state == target.value:
        return promotion
    allowed = frozenset(s.value for s in PROMOTION_TRANSITIONS[PromotionState(promotion.state)])
    raise Conflict(illegal_move(f"promotion {promotion_id}", promotion.state, target.value,
                                allowed))


def mark_triggered(session: Session, promotion_id: int, pipeline_id: int | None,
                   pipeline_url: str | None, actor: Actor) -> Promotion:
    """The downstream pipeline started: record it (keeping any pipeline that claimed it)."""
    return mark_triggered_many(session, [(promotion_id, pipeline_id, pipeline_url)],
                               actor)[promotion_id]


def mark_triggered_many(session: Session, pipelines: list[tuple[int, int | None, str | None]],
                        actor: Actor) -> dict[int, Promotion]:
    """Downstream pipelines started, (promotion id, pipeline id, URL) each: record them as
    mark_triggered does, with a few statements for them all (the dispatcher records what
    landed together). Raises as the first promotion that cannot be recorded would."""
    with write_transaction(session):
        ids = list(dict.fromkeys(promotion_id for promotion_id, _, _ in pipelines))
        known = {p.id: p for p in promotions.get_many(session, ids)}
        missing = [promotion_id for promotion_id in ids if promotion_id not in known]
        if missing:
            raise NotFound(f"no promotion with id {missing[0]}")
        requested = [promotion_id for promotion_id in ids
                     if known[promotion_id].state == PromotionState.REQUESTED.value]
        target = PromotionState.TRIGGERED
        moved = {p.id: p for p in promotions.move_many(
            session, requested, promotion_sources(target),
            {"state": target.value, "updated_at": utcnow()})}
        for promotion_id in requested:
            if promotion_id not in moved:  # as transition: re-doing is a no-op, else a 409
                _refuse_move(session, promotion_id, target)
        audit.append_many(session, actor, [
            (f"promotion.{target.value}", "promotion", promotion_id, None,
             as_dict(moved[promotion_id])) for promotion_id in requested
            if promotion_id in moved])
        promotions.record_pipelines(session, pipelines)
        return {p.id: p for p in promotions.get_many(session, ids, fresh=True)}


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


def supersede_older(session: Session, env_id: int, release_id: int,
                    actor: Actor) -> list[int]:
    """Promotions of older releases not yet deploying are overtaken by this deployment."""
    stale = promotions.waiting_of_older_releases(session, env_id, release_id)
    for promotion_id in stale:
        transition(session, promotion_id, PromotionState.SUPERSEDED, actor,
                   f"release {release_id} was deployed to the environment first")
    return stale


def wants_automatic(policy: EnvironmentPolicy) -> bool:
    """Does this environment promote by itself once the gate allows?"""
    return policy.auto_promote or (policy.promote_on_approval and policy.required_approvals > 0)


def consider_automatic(session: Session, release: Release, env: Environment, actor: Actor,
                       now: datetime | None = None) -> Promotion | None:
    """Promote now if policy wants it, nothing holds it back and the gate allows it."""
    if not _automatic_due(session, release, env, now):
        return None
    return _promote_automatically(session, release, env, actor)


def _promote_automatically(session: Session, release: Release, env: Environment,
                           actor: Actor) -> Promotion | None:
    """The automatic promotion of a release found due; None when one already existed."""
    kind = "approval" if policy_of(env).required_approvals else "auto"
    promotion, created = create(session, actor, release, env, kind, f"{kind} promotion")
    return promotion if created else None


def _automatic_due(session: Session, release: Release, env: Environment,
                   now: datetime | None) -> bool:
    """Whether policy wants the release promoted to env now and the gate allows it."""
    policy = policy_of(env)
    if env.position == 0 or not wants_automatic(policy) or env.hold_at is not None:
        return False
    if release.revoked_at is not None or promotions.count_of(session, release.id, env.id):
        return False
    live = rollouts.current(session, env.id)
    if live is not None and live.release_id >= release.id:
        return False
    return gate.decide(session, release, env, now).allowed


def reevaluate_waiting(session: Session, now: datetime | None = None) -> list[int]:
    """Promote what became allowed with time (soak, freeze ends); the worker calls this.

    It looks without the writers' lock first: most ticks find nothing due, and need not
    wait behind other writers. What it found is looked at again under the lock.
    """
    if not _waiting(session, now):
        return []
    session.expire_all()  # what was read without the lock is read again under it
    actor = Actor.system("promotion-service")
    created = []
    with write_transaction(session):
        for release, env in _waiting(session, now):  # found due again, under the lock
            promotion = _promote_automatically(session, release, env, actor)
            if promotion is not None:
                created.append(promotion.id)
    return created


def _waiting(session: Session, now: datetime | None) -> list[tuple[Release, Environment]]:
    """The latest release passed in each environment's predecessor, where it is due now."""
    due = []
    for env in projects.later_environments_without_hold(session):
        prev = projects.neighbour(session, env, -1)
        if prev is None or not wants_automatic(policy_of(env)):
            continue
        release_id = verifications.latest_passed_release(session, prev.id)
        if release_id is None:
            continue
        release = releases.get(session, release_id)
        if _automatic_due(session, release, env, now):
            due.append((release, env))
    return due
