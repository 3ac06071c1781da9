"""What CI jobs report: scans, deployments, verifications, and what follows from them
(promotions move on, releases go live, the next environment may promote automatically)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from ..db import write_transaction
from ..db.models import (
    Deployment,
    Environment,
    Image,
    Promotion,
    Release,
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
from ..store import audit, deployments, images, projects, promotions, releases, scans
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


def record_deployment(session: Session, actor: Actor, *, repository: str, digest: str,
                      environment: str, state: str, job_url: str | None = None,
                      message: str | None = None, template_hash: str | None = None,
                      release_id: str | None = None,
                      rollback_of: str | None = None) -> Deployment:
    """A deploy job reports a deployment of an image to an environment."""
    with write_transaction(session):
        image, env = lookups.image_and_environment(session, repository, digest, environment)
        return add_deployment(session, actor, image, env, state=state, job_url=job_url,
                              message=message, template_hash=template_hash,
                              release_id=release_id, rollback_of=rollback_of)


def add_deployment(session: Session, actor: Actor, image: Image, env: Environment, *,
                   state: str, job_url: str | None = None, message: str | None = None,
                   template_hash: str | None = None, release_id: str | None = None,
                   rollback_of: str | None = None) -> Deployment:
    """A deployment of this image: the promotion in flight and the releases follow.

    Into a gated environment (any but the first) only the promotion or rollback in flight
    for this image may be deployed, by the pipeline that claimed it.
    """
    with write_transaction(session):
        lookups.check_image_scope(session, actor, image)
        if DeploymentState(state) not in DEPLOYMENT_INITIAL:
            raise Invalid.field("state", f"a new deployment starts as one of: "
                                f"{', '.join(sorted(DEPLOYMENT_INITIAL))}")
        lookups.check_job_environment(actor, env.name)
        approvals.check_template(session, image, env, template_hash)
        in_flight = promotions.in_flight(session, image.id, env.id)
        if env.position > 0:
            _check_gated_report(actor, image, env, in_flight, "deployment")
        deployment = deployments.add(session, image_id=image.id, environment_id=env.id,
                                     state=state, job_url=job_url, message=message,
                                     actor=actor.name, template_hash=template_hash,
                                     release_id=release_id, rollback_of=rollback_of,
                                     promotion_id=in_flight.id if in_flight else None)
        audit.append(session, actor, "deployment.recorded", "deployment", deployment.id,
                     after={"image_id": image.id, "environment": env.name, "state": state,
                            "job_url": job_url, "template_hash": template_hash,
                            "release_id": release_id, "rollback_of": rollback_of})
        _follow(session, actor, deployment, image, env)
        return deployment


def _check_gated_report(actor: Actor, image: Image, env: Environment,
                        in_flight: Promotion | None, what: str) -> None:
    """Refuse a report into a gated environment that no promotion in flight accounts for."""
    if in_flight is None:
        raise Conflict(f"no promotion or rollback of {image.repository}@{image.digest} into "
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
        image = images.get(session, deployment.image_id)
        lookups.check_image_scope(session, actor, image)
        env = session.get(Environment, deployment.environment_id)
        lookups.check_job_environment(actor, env.name)
        target = DeploymentState(state)
        if env.position > 0:  # closing one as failed is always allowed, by its own pipeline
            owner = promotions.get(session, deployment.promotion_id) \
                if deployment.promotion_id else None
            if target is DeploymentState.FAILED:
                _check_pipeline(actor, env, owner)
            else:
                _check_gated_report(actor, image, env, owner if owner is not None
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
        _follow(session, actor, deployment, image, env)
        return deployment


def record_verification(session: Session, actor: Actor, *, repository: str, digest: str,
                        environment: str, passed: bool, details: dict[str, Any] | None = None,
                        job_url: str | None = None) -> Verification:
    """Smoke checks ran; a pass may promote the image onward automatically."""
    with write_transaction(session):
        image, env = lookups.image_and_environment(session, repository, digest, environment)
        lookups.check_image_scope(session, actor, image)
        lookups.check_job_environment(actor, env.name)
        in_flight = promotions.in_flight(session, image.id, env.id)
        live = releases.current(session, env.id)
        if env.position > 0 and (live is None or live.image_id != image.id or in_flight):
            _check_gated_report(actor, image, env, in_flight, "verification")
        verification = verification_rows.add(session, image_id=image.id, environment_id=env.id,
                                             passed=passed, details=details or {},
                                             job_url=job_url, actor=actor.name)
        audit.append(session, actor, "verification.recorded", "image", image.id,
                     after={"environment": env.name, "passed": passed, "job_url": job_url})
        if passed:
            release = releases.latest_for(session, env.id, image.id)
            if release is not None and release.verified_at is None:
                release.verified_at = verification.created_at
            if in_flight is not None:
                promotion.advance(session, in_flight, PromotionState.VERIFIED, actor)
            nxt = projects.neighbour(session, env, 1)
            if nxt is not None:
                promotion.consider_automatic(session, image, nxt, actor)
        elif in_flight is not None:
            promotion.mark_failed(session, in_flight.id, f"verification failed in {env.name}",
                                  actor)
        session.flush()
    return verification


def _restored(session: Session, env: Environment, image: Image, deployment: Deployment,
              in_flight: Promotion | None) -> Release | None:
    """The verified release a rollback restores (None for anything but a rollback)."""
    if in_flight is None or in_flight.kind != "rollback":
        return None
    for release_id in (deployment.rollback_of, in_flight.release_id):
        if release_id:
            found = releases.verified(session, env.id, release_id=release_id)
            if found is not None and found.image_id == image.id:
                return found
    return releases.verified(session, env.id, image_id=image.id)


def _follow(session: Session, actor: Actor, deployment: Deployment, image: Image,
            env: Environment) -> None:
    in_flight = promotions.in_flight(session, image.id, env.id)
    state = DeploymentState(deployment.state)
    if state is DeploymentState.STARTED and in_flight is not None:
        promotion.advance(session, in_flight, PromotionState.DEPLOYING, actor)
    elif state is DeploymentState.SUCCEEDED:
        if deployment.template_hash:
            approval_rows.bind_template(session, image.id, env.id, deployment.template_hash)
        restored = _restored(session, env, image, deployment, in_flight)
        if in_flight is not None:
            promotion.advance(session, in_flight, PromotionState.DEPLOYED, actor)
        releases.add(session, environment_id=env.id, image_id=image.id,
                     promotion_id=in_flight.id if in_flight else None,
                     deployment_id=deployment.id, release_id=deployment.release_id,
                     rollback_of=restored.release_id if restored else deployment.rollback_of,
                     verified_at=restored.verified_at if restored else None)
        if restored is not None and in_flight is not None:
            # a rollback went live: what runs now is what was verified there before
            promotion.advance(session, in_flight, PromotionState.VERIFIED, actor)
        promotion.supersede_older(session, env.id, image.id, actor)
    elif state is DeploymentState.FAILED and in_flight is not None:
        promotion.mark_failed(session, in_flight.id,
                              deployment.message or f"deployment to {env.name} failed", actor)
    elif state is DeploymentState.ROLLED_BACK:
        releases.roll_back(session, deployment.id)
        if in_flight is not None:
            promotion.mark_failed(session, in_flight.id, deployment.message
                                  or f"deployment to {env.name} was rolled back", actor)


def close_abandoned(session: Session, timeout_seconds: float) -> list[int]:
    """Fail deployments reported started and never finished within the timeout (a deploy job
    that was killed cannot say so); their promotions fail with them. The worker calls this."""
    actor = Actor.system("promotion-service")
    closed = []
    with write_transaction(session):
        cutoff = utcnow() - timedelta(seconds=timeout_seconds)
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
                _follow(session, actor, deployment, images.get(session, deployment.image_id),
                        session.get(Environment, deployment.environment_id))
                closed.append(deployment.id)
    return closed
