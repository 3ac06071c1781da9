"""What CI jobs report: scans, deployments, verifications (and what follows from them)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

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
from ..models import Deployment, Environment, Image, Release, Scan, Verification, utcnow
from . import audit, images, projects, promotions, releases

D = DeploymentState
P = PromotionState


def record_scan(session: Session, actor: Actor, image: Image, *, scanner: str,
                counts: dict[str, int], findings: list[dict[str, Any]] | None = None,
                report_url: str | None = None) -> Scan:
    """Store a scan summary; the gate reads the latest."""
    images.check_scope(session, actor, image)
    scan = Scan(image_id=image.id, scanner=scanner, counts=counts, findings=findings or [],
                report_url=report_url, actor=actor.name)
    session.add(scan)
    session.flush()
    audit.append(session, actor, "scan.recorded", "image", image.id,
                 after={"scan_id": scan.id, "scanner": scanner, "counts": counts})
    return scan


def latest_scan(session: Session, image_id: int) -> Scan | None:
    """The scan the gate reads: the image's most recent."""
    return session.scalar(select(Scan).where(Scan.image_id == image_id)
                          .order_by(Scan.id.desc()).limit(1))


def record_deployment(session: Session, actor: Actor, image: Image, env: Environment, *,
                      state: str, job_url: str | None = None,
                      message: str | None = None) -> Deployment:
    """A deploy job reports; the promotion in flight and the releases follow."""
    images.check_scope(session, actor, image)
    if D(state) not in DEPLOYMENT_INITIAL:
        raise Invalid.field("state", f"a new deployment starts as one of: "
                            f"{', '.join(sorted(DEPLOYMENT_INITIAL))}")
    promotion = promotions.in_flight(session, image.id, env.id)
    deployment = Deployment(image_id=image.id, environment_id=env.id, state=state,
                            job_url=job_url, message=message, actor=actor.name,
                            promotion_id=promotion.id if promotion else None)
    session.add(deployment)
    session.flush()
    audit.append(session, actor, "deployment.recorded", "deployment", deployment.id,
                 after={"image_id": image.id, "environment": env.name, "state": state,
                        "job_url": job_url})
    _follow(session, actor, deployment, image, env)
    return deployment


def update_deployment(session: Session, actor: Actor, deployment_id: int, *, state: str,
                      message: str | None = None) -> Deployment:
    """Move a deployment on (started -> succeeded/failed, succeeded -> rolled_back)."""
    deployment = session.get(Deployment, deployment_id)
    if deployment is None:
        raise NotFound(f"no deployment with id {deployment_id}")
    image = session.get(Image, deployment.image_id)
    images.check_scope(session, actor, image)
    target = D(state)
    before = deployment.state
    moved = session.execute(
        update(Deployment).where(
            Deployment.id == deployment_id,
            Deployment.state.in_([s.value for s in deployment_sources(target)]))
        .values(state=target.value, message=message or deployment.message, updated_at=utcnow())
        .execution_options(synchronize_session=False)).rowcount
    session.refresh(deployment)
    if not moved:
        if deployment.state == target.value:
            return deployment
        allowed = frozenset(s.value for s in DEPLOYMENT_TRANSITIONS[D(deployment.state)])
        raise Conflict(illegal_move(f"deployment {deployment_id}", deployment.state,
                                    target.value, allowed))
    audit.append(session, actor, "deployment.updated", "deployment", deployment.id,
                 before={"state": before}, after={"state": target.value, "message": message})
    _follow(session, actor, deployment, image, session.get(Environment, deployment.environment_id))
    return deployment


def record_verification(session: Session, actor: Actor, image: Image, env: Environment, *,
                        passed: bool, details: dict[str, Any] | None = None,
                        job_url: str | None = None) -> Verification:
    """Smoke checks ran; a pass may promote the image onward automatically."""
    images.check_scope(session, actor, image)
    verification = Verification(image_id=image.id, environment_id=env.id, passed=passed,
                                details=details or {}, job_url=job_url, actor=actor.name)
    session.add(verification)
    session.flush()
    audit.append(session, actor, "verification.recorded", "image", image.id,
                 after={"environment": env.name, "passed": passed, "job_url": job_url})
    promotion = promotions.in_flight(session, image.id, env.id)
    if passed:
        release = releases.latest_for(session, env.id, image.id)
        if release is not None and release.verified_at is None:
            release.verified_at = verification.created_at
        if promotion is not None:
            promotions.advance(session, promotion, P.VERIFIED, actor)
        nxt = projects.neighbour(session, env, 1)
        if nxt is not None:
            promotions.consider_automatic(session, image, nxt, actor)
    elif promotion is not None:
        promotions.mark_failed(session, promotion.id, f"verification failed in {env.name}",
                               actor)
    session.flush()
    return verification


def _follow(session: Session, actor: Actor, deployment: Deployment, image: Image,
            env: Environment) -> None:
    promotion = promotions.in_flight(session, image.id, env.id)
    state = D(deployment.state)
    if state is D.STARTED and promotion is not None:
        promotions.advance(session, promotion, P.DEPLOYING, actor)
    elif state is D.SUCCEEDED:
        if promotion is not None:
            promotions.advance(session, promotion, P.DEPLOYED, actor)
        session.add(Release(environment_id=env.id, image_id=image.id,
                            promotion_id=promotion.id if promotion else None,
                            deployment_id=deployment.id))
        session.flush()
        promotions.supersede_older(session, env.id, image.id, actor)
    elif state is D.FAILED and promotion is not None:
        promotions.mark_failed(session, promotion.id,
                               deployment.message or f"deployment to {env.name} failed", actor)
    elif state is D.ROLLED_BACK:
        session.execute(update(Release).where(Release.deployment_id == deployment.id,
                                              Release.rolled_back_at.is_(None))
                        .values(rolled_back_at=utcnow())
                        .execution_options(synchronize_session=False))
        if promotion is not None:
            promotions.mark_failed(session, promotion.id, deployment.message
                                   or f"deployment to {env.name} was rolled back", actor)
