"""What CI jobs report: scans, deployments, verifications, and what follows from them
(promotions move on, releases go live, the next environment may promote automatically)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from ..db import write_transaction
from ..db.models import Deployment, Environment, Image, Scan, Verification, utcnow
from ..domain.actor import Actor
from ..domain.states import (
    DEPLOYMENT_INITIAL,
    DEPLOYMENT_TRANSITIONS,
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
                      message: str | None = None,
                      template_hash: str | None = None) -> Deployment:
    """A deploy job reports a deployment of an image to an environment."""
    with write_transaction(session):
        image, env = lookups.image_and_environment(session, repository, digest, environment)
        return add_deployment(session, actor, image, env, state=state, job_url=job_url,
                              message=message, template_hash=template_hash)


def add_deployment(session: Session, actor: Actor, image: Image, env: Environment, *,
                   state: str, job_url: str | None = None, message: str | None = None,
                   template_hash: str | None = None) -> Deployment:
    """A deployment of this image: the promotion in flight and the releases follow."""
    with write_transaction(session):
        lookups.check_image_scope(session, actor, image)
        if DeploymentState(state) not in DEPLOYMENT_INITIAL:
            raise Invalid.field("state", f"a new deployment starts as one of: "
                                f"{', '.join(sorted(DEPLOYMENT_INITIAL))}")
        approvals.check_template(session, image, env, template_hash)
        in_flight = promotions.in_flight(session, image.id, env.id)
        deployment = deployments.add(session, image_id=image.id, environment_id=env.id,
                                     state=state, job_url=job_url, message=message,
                                     actor=actor.name,
                                     promotion_id=in_flight.id if in_flight else None,
                                     template_hash=template_hash)
        audit.append(session, actor, "deployment.recorded", "deployment", deployment.id,
                     after={"image_id": image.id, "environment": env.name, "state": state,
                            "job_url": job_url, "template_hash": template_hash})
        _follow(session, actor, deployment, image, env)
        return deployment


def update_deployment(session: Session, actor: Actor, deployment_id: int, *, state: str,
                      message: str | None = None) -> Deployment:
    """Move a deployment on (started -> succeeded/failed, succeeded -> rolled_back)."""
    with write_transaction(session):
        deployment = deployments.get(session, deployment_id)
        if deployment is None:
            raise NotFound(f"no deployment with id {deployment_id}")
        image = images.get(session, deployment.image_id)
        lookups.check_image_scope(session, actor, image)
        target = DeploymentState(state)
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
        _follow(session, actor, deployment, image,
                session.get(Environment, deployment.environment_id))
        return deployment


def record_verification(session: Session, actor: Actor, *, repository: str, digest: str,
                        environment: str, passed: bool, details: dict[str, Any] | None = None,
                        job_url: str | None = None) -> Verification:
    """Smoke checks ran; a pass may promote the image onward automatically."""
    with write_transaction(session):
        image, env = lookups.image_and_environment(session, repository, digest, environment)
        lookups.check_image_scope(session, actor, image)
        verification = verification_rows.add(session, image_id=image.id, environment_id=env.id,
                                             passed=passed, details=details or {},
                                             job_url=job_url, actor=actor.name)
        audit.append(session, actor, "verification.recorded", "image", image.id,
                     after={"environment": env.name, "passed": passed, "job_url": job_url})
        in_flight = promotions.in_flight(session, image.id, env.id)
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


def _follow(session: Session, actor: Actor, deployment: Deployment, image: Image,
            env: Environment) -> None:
    in_flight = promotions.in_flight(session, image.id, env.id)
    state = DeploymentState(deployment.state)
    if state is DeploymentState.STARTED and in_flight is not None:
        promotion.advance(session, in_flight, PromotionState.DEPLOYING, actor)
    elif state is DeploymentState.SUCCEEDED:
        if deployment.template_hash:
            approval_rows.bind_template(session, image.id, env.id, deployment.template_hash)
        if in_flight is not None:
            promotion.advance(session, in_flight, PromotionState.DEPLOYED, actor)
        releases.add(session, environment_id=env.id, image_id=image.id,
                     promotion_id=in_flight.id if in_flight else None,
                     deployment_id=deployment.id)
        promotion.supersede_older(session, env.id, image.id, actor)
    elif state is DeploymentState.FAILED and in_flight is not None:
        promotion.mark_failed(session, in_flight.id,
                              deployment.message or f"deployment to {env.name} failed", actor)
    elif state is DeploymentState.ROLLED_BACK:
        releases.roll_back(session, deployment.id)
        if in_flight is not None:
            promotion.mark_failed(session, in_flight.id, deployment.message
                                  or f"deployment to {env.name} was rolled back", actor)
