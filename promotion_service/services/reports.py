"""What CI jobs report: scans, deployments, verifications, and what follows from them
(promotions move on, releases go live, the next environment may promote automatically).
Scans are per image; the rest is per release (an image named alone: its one-member release)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from ..db import write_transaction
from ..db.models import (
    Deployment,
    Environment,
    Promotion,
    Release,
    Rollout,
    Scan,
    Verification,
    utcnow,
)
from ..domain.actor import Actor
from ..domain.durations import format_duration
from ..domain.states import (
    DEPLOYMENT_INITIAL,
    DEPLOYMENT_TRANSITIONS,
    IN_FLIGHT,
    DeploymentState,
    PromotionState,
    deployment_sources,
    illegal_move,
)
from ..errors import Conflict, Invalid, NotFound
from ..store import approvals as approval_rows
from ..store import audit, deployments, projects, promotions, releases, rollouts, scans
from ..store import verifications as verification_rows
from . import approvals, lookups, promotion


def record_scan(session: Session, actor: Actor, *, repository: str, digest: str,
                scanner: str, counts: dict[str, int],
                findings: list[dict[str, Any]] | None = None,
                report_url: str | None = None) -> Scan:
    """Store a scan summary; the gate reads the latest."""
    with write_transaction(session):
        image = lookups.image(session, repository, digest)
        lookups.check_image_scope(session, actor, image)
        scan = scans.add(session, image_id=image.id, scanner=scanner, counts=counts,
                         findings=findings or [], report_url=report_url, actor=actor.name)
        audit.append(session, actor, "scan.recorded", "image", image.id,
                     after={"scan_id": scan.id, "scanner": scanner, "counts": counts})
    return scan


def record_deployment(session: Session, actor: Actor, *, environment: str, state: str,
                      job_url: str | None = None, message: str | None = None,
                      template_hash: str | None = None, record_id: str | None = None,
                      rollback_of: str | None = None, **names: Any) -> Deployment:
    """A deploy job reports a deployment of a release (or an image's one-member release)."""
    with write_transaction(session):
        release, env = lookups.release_and_environment(session, environment, **names)
        return add_deployment(session, actor, release, env, state=state, job_url=job_url,
                              message=message, template_hash=template_hash,
                              record_id=record_id, rollback_of=rollback_of)


def add_deployment(session: Session, actor: Actor, release: Release, env: Environment, *,
                   state: str, job_url: str | None = None, message: str | None = None,
                   template_hash: str | None = None, record_id: str | None = None,
                   rollback_of: str | None = None) -> Deployment:
    """A deployment of this release: the promotion in flight and the rollouts follow.

    Into a gated environment (any but the first) only the promotion or rollback in flight
    for this release may be deployed, by the pipeline that claimed it.
    """
    with write_transaction(session):
        lookups.check_release_scope(session, actor, release)
        if DeploymentState(state) not in DEPLOYMENT_INITIAL:
            raise Invalid.field("state", f"a new deployment starts as one of: "
                                f"{', '.join(sorted(DEPLOYMENT_INITIAL))}")
        lookups.check_job_environment(actor, env.name)
        approvals.check_template(session, release, env, template_hash)
        in_flight = promotions.in_flight(session, release.id, env.id)
        if env.position > 0:
            _check_gated_report(actor, release, env, in_flight, "deployment")
        deployment = deployments.add(session, release_id=release.id, environment_id=env.id,
                                     state=state, job_url=job_url, message=message,
                                     actor=actor.name, template_hash=template_hash,
                                     record_id=record_id, rollback_of=rollback_of,
                                     promotion_id=in_flight.id if in_flight else None)
        audit.append(session, actor, "deployment.recorded", "deployment", deployment.id,
                     after={"release_id": release.id, "environment": env.name,
                            "state": state, "job_url": job_url,
                            "template_hash": template_hash, "record_id": record_id,
                            "rollback_of": rollback_of})
        _follow(session, actor, deployment, release, env)
        return deployment


def _check_gated_report(actor: Actor, release: Release, env: Environment,
                        in_flight: Promotion | None, what: str) -> None:
    """Refuse a report into a gated environment that no promotion in flight accounts for."""
    if in_flight is None:
        raise Conflict(f"no promotion or rollback of {release.label} into "
                       f"{env.name} is in flight, so no {what} of it there is accepted: "
                       f"{env.name} takes what the service promotes (request a promotion, "
                       "or roll back to a verified release)")
    _check_pipeline(actor, env, in_flight)


def _check_pipeline(actor: Actor, env: Environment, promotion: Promotion | None) -> None:
    """A job with an ID token reports only on the promotion its own pipeline claimed."""
    mine = actor.pipeline.pipeline_id if actor.pipeline is not None else None
    if promotion is not None and mine is not None and promotion.pipeline_id not in (None, mine):
        raise Conflict(f"promotion {promotion.id} into {env.name} is deployed by pipeline "
                       f"{promotion.pipeline_id}; this job's pipeline {mine} may not report it")


def update_deployment(session: Session, actor: Actor, deployment_id: int, *, state: str,
                      message: str | None = None) -> Deployment:
    """Move a deployment on (started -> succeeded/failed, succeeded -> rolled_back)."""
    with write_transaction(session):
        deployment = deployments.get(session, deployment_id)
        if deployment is None:
            raise NotFound(f"no deployment with id {deployment_id}")
        release = releases.get(session, deployment.release_id)
        lookups.check_release_scope(session, actor, release)
        env = session.get(Environment, deployment.environment_id)
        lookups.check_job_environment(actor, env.name)
        target = DeploymentState(state)
        if env.position > 0:  # closing one as failed is always allowed, by its own pipeline
            owner = promotions.get(session, deployment.promotion_id) \
                if deployment.promotion_id else None
            if target is DeploymentState.FAILED:
                _check_pipeline(actor, env, owner)
            else:
                _check_gated_report(actor, release, env, owner if owner is not None
                                    and owner.state in IN_FLIGHT else None, "deployment")
        before = deployment.state
        moved = deployments.move(session, deployment_id, deployment_sources(target), {
            "state": target.value, "message": message or deployment.message,
            "updated_at": utcnow()})
        session.refresh(deployment)
        if not moved:
            if deployment.state == target.value:
                return deployment
            allowed = frozenset(s.value for s in DEPLOYMENT_TRANSITIONS[
                DeploymentState(deployment.state)])
            raise Conflict(illegal_move(f"deployment {deployment_id}", deployment.state,
                                        target.value, allowed))
        audit.append(session, actor, "deployment.updated", "deployment", deployment.id,
                     before={"state": before}, after={"state": target.value, "message": message})
        _follow(session, actor, deployment, release, env)
        return deployment


def record_verification(session: Session, actor: Actor, *, environment: str, passed: bool,
                        details: dict[str, Any] | None = None, job_url: str | None = None,
                        **names: Any) -> Verification:
    """Smoke checks ran; a pass may promote the release onward automatically."""
    with write_transaction(session):
        release, env = lookups.release_and_environment(session, environment, **names)
        lookups.check_release_scope(session, actor, release)
        lookups.check_job_environment(actor, env.name)
        in_flight = promotions.in_flight(session, release.id, env.id)
        live = rollouts.current(session, env.id)
        if env.position > 0 and (live is None or live.release_id != release.id or in_flight):
            _check_gated_report(actor, release, env, in_flight, "verification")
        verification = verification_rows.add(session, release_id=release.id,
                                             environment_id=env.id, passed=passed,
                                             details=details or {}, job_url=job_url,
                                             actor=actor.name)
        audit.append(session, actor, "verification.recorded", "release", release.id,
                     after={"environment": env.name, "passed": passed, "job_url": job_url})
        if passed:
            rollout = rollouts.latest_for(session, env.id, release.id)
            if rollout is not None and rollout.verified_at is None:
                rollout.verified_at = verification.created_at
            if in_flight is not None:
                promotion.advance(session, in_flight, PromotionState.VERIFIED, actor)
            nxt = projects.neighbour(session, env, 1)
            if nxt is not None:
                promotion.consider_automatic(session, release, nxt, actor)
        elif in_flight is not None:
            promotion.mark_failed(session, in_flight.id, f"verification failed in {env.name}",
                                  actor)
        session.flush()
    return verification


def _restored(session: Session, env: Environment, release: Release, deployment: Deployment,
              in_flight: Promotion | None) -> Rollout | None:
    """The verified rollout a rollback restores (None for anything but a rollback)."""
    if in_flight is None or in_flight.kind != "rollback":
        return None
    for record_id in (deployment.rollback_of, in_flight.record_id):
        if record_id:
            found = rollouts.verified(session, env.id, record_id=record_id)
            if found is not None and found.release_id == release.id:
                return found
    return rollouts.verified(session, env.id, release_id=release.id)


def _roll_back_live(session: Session, env: Environment, release: Release,
                    rollback: Promotion) -> None:
    """A rollback went live: the release it left is rolled back out of the environment, by
    whoever asked for the rollback and why. Marked only now, when the rollback is deployed:
    a rollback that fails leaves the release it would have left serving, and on record so."""
    live = rollouts.current(session, env.id)
    if live is not None and live.release_id != release.id:
        rollouts.roll_back(session, rollout_id=live.id, by=rollback.requested_by,
                           reason=rollback.reason or f"rollback of {env.name}")


def _follow(session: Session, actor: Actor, deployment: Deployment, release: Release,
            env: Environment) -> None:
    in_flight = promotions.in_flight(session, release.id, env.id)
    state = DeploymentState(deployment.state)
    if state is DeploymentState.STARTED and in_flight is not None:
        promotion.advance(session, in_flight, PromotionState.DEPLOYING, actor)
    elif state is DeploymentState.SUCCEEDED:
        if deployment.template_hash:
            approval_rows.bind_template(session, release.id, env.id, deployment.template_hash)
        restored = _restored(session, env, release, deployment, in_flight)
        if restored is not None and in_flight is not None:
            _roll_back_live(session, env, release, in_flight)
        if in_flight is not None:
            promotion.advance(session, in_flight, PromotionState.DEPLOYED, actor)
        rollouts.add(session, environment_id=env.id, release_id=release.id,
                     promotion_id=in_flight.id if in_flight else None,
                     deployment_id=deployment.id, record_id=deployment.record_id,
                     rollback_of=restored.record_id if restored else deployment.rollback_of,
                     verified_at=restored.verified_at if restored else None)
        if restored is not None and in_flight is not None:
            # a rollback went live: what runs now is what was verified there before
            promotion.advance(session, in_flight, PromotionState.VERIFIED, actor)
        promotion.supersede_older(session, env.id, release.id, actor)
    elif state is DeploymentState.FAILED and in_flight is not None:
        promotion.mark_failed(session, in_flight.id,
                              deployment.message or f"deployment to {env.name} failed", actor)
    elif state is DeploymentState.ROLLED_BACK:
        rollouts.roll_back(session, deployment_id=deployment.id, by=actor.name,
                           reason=deployment.message or "its deploy job rolled it back")
        if in_flight is not None:
            promotion.mark_failed(session, in_flight.id, deployment.message
                                  or f"deployment to {env.name} was rolled back", actor)


def close_abandoned(session: Session, timeout_seconds: float) -> list[int]:
    """Fail deployments reported started and never finished within the timeout (a deploy job
    that was killed cannot say so); their promotions fail with them. The worker calls this."""
    actor = Actor.system("promotion-service")
    closed: list[int] = []
    cutoff = utcnow() - timedelta(seconds=timeout_seconds)
    if not deployments.started_before(session, cutoff):  # looked without the writers' lock
        return closed
    with write_transaction(session):
        for deployment in deployments.started_before(session, cutoff):
            message = (f"no report for {format_duration(timeout_seconds)} after it started: "
                       "the deploy job was probably killed (closed by the service)")
            if deployments.move(session, deployment.id, [DeploymentState.STARTED], {
                    "state": DeploymentState.FAILED.value, "message": message,
                    "updated_at": utcnow()}):
                session.refresh(deployment)
                audit.append(session, actor, "deployment.timed_out", "deployment",
                             deployment.id, before={"state": "started"},
                             after={"state": "failed", "message": message})
                _follow(session, actor, deployment, releases.get(session, deployment.release_id),
                        session.get(Environment, deployment.environment_id))
                closed.append(deployment.id)
    return closed
