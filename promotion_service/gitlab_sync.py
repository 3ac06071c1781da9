"""What GitLab's webhook events change in the service (pipelines, deployments, jobs).

SQL-bound (a Session in, the caller commits); no Flask, no HTTP. The merge-request gate is in
merge_request_gate.py, deployment approvals in deployment_approvals.py.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .domain.actor import Actor
from .domain.gitlab_events import (
    DeploymentEvent,
    DeploymentOutcome,
    JobEvent,
    PipelineEvent,
    PipelineOutcome,
)
from .errors import Conflict
from .gitlab_models import GitLabDeployment, WebhookDelivery
from .models import Deployment, Environment, Image, Project, Promotion, utcnow
from .store import projects

log = logging.getLogger(__name__)

IN_FLIGHT = ("requested", "triggered", "deploying", "deployed")


def gitlab_actor(username: str | None, request_id: str | None = None,
                 source_ip: str | None = None) -> Actor:
    """The audit log's actor for something a GitLab user did."""
    return Actor(name=f"gitlab:{username or 'unknown'}", role="system",
                 request_id=request_id, source_ip=source_ip)


# -- deliveries -----------------------------------------------------------------------------
def seen_before(session: Session, key: str, event: str, project_id: int | None) -> bool:
    """Record a delivery key; True if it was already recorded (a replay or redelivery)."""
    if session.scalar(select(WebhookDelivery.id).where(WebhookDelivery.key == key)):
        return True
    try:
        with session.begin_nested():
            session.add(WebhookDelivery(key=key, event=event[:64], gitlab_project_id=project_id))
    except IntegrityError:  # the same delivery, concurrently
        return True
    return False


def prune_deliveries(session: Session, keep_days: float = 7.0) -> int:
    """Forget delivery keys older than GitLab would ever redeliver (it retries for hours)."""
    cutoff = utcnow() - timedelta(days=keep_days)
    return session.execute(delete(WebhookDelivery).where(WebhookDelivery.received_at < cutoff)
                           ).rowcount or 0


def note_outcome(session: Session, key: str, outcome: str) -> None:
    """Keep what a delivery did, for support."""
    row = session.scalar(select(WebhookDelivery).where(WebhookDelivery.key == key))
    if row is not None:
        row.outcome = outcome[:2000]


# -- lookups --------------------------------------------------------------------------------
def find_project(session: Session, gitlab_id: int, path: str = "") -> Project | None:
    """The service's project for a GitLab project id (or full path)."""
    clauses = [Project.gitlab_id == gitlab_id]
    if path:
        clauses.append(Project.path == path)
    return session.scalars(select(Project).where(or_(*clauses)).order_by(Project.id)).first()


def image_for_commit(session: Session, project: Project, sha: str,
                     environment: Environment | None = None) -> Image | None:
    """The image built from a commit; the one being promoted into the environment first."""
    if environment is not None:
        promoted = session.scalar(
            select(Image).join(Promotion, Promotion.image_id == Image.id)
            .where(Promotion.environment_id == environment.id, Image.commit_sha == sha)
            .order_by(Promotion.id.desc()).limit(1))
        if promoted is not None:
            return promoted
    return session.scalar(select(Image).where(Image.project_id == project.id,
                                              Image.commit_sha == sha)
                          .order_by(Image.id.desc()).limit(1))


# -- pipeline events ------------------------------------------------------------------------
def apply_pipeline(session: Session, event: PipelineEvent, actor: Actor) -> str:
    """Tie a triggered pipeline to its promotion and fail the promotion if the pipeline fails."""
    from .store.promotions import mark_failed, mark_triggered

    if event.promotion_id is None:
        return "ignored: not a pipeline the service triggered (no CD_PROMOTION_ID)"
    promotion = session.get(Promotion, event.promotion_id)
    project = find_project(session, event.project_id, event.project_path)
    if promotion is None or project is None:
        return f"ignored: promotion {event.promotion_id} is not known here"
    environment = session.get(Environment, promotion.environment_id)
    if environment is None or environment.project_id != project.id:
        return f"ignored: promotion {event.promotion_id} belongs to another project"
    if promotion.pipeline_id is None or (promotion.pipeline_id == event.pipeline_id
                                         and not promotion.pipeline_url):
        try:
            mark_triggered(session, promotion.id, event.pipeline_id, event.url, actor)
        except Conflict as e:
            return f"ignored: {e}"
        session.refresh(promotion)
    if promotion.pipeline_id != event.pipeline_id:
        return (f"ignored: pipeline {event.pipeline_id} is a duplicate; pipeline "
                f"{promotion.pipeline_id} deploys promotion {promotion.id}")
    if event.outcome is PipelineOutcome.FAILED and promotion.state in IN_FLIGHT:
        try:
            mark_failed(session, promotion.id,
                        f"GitLab pipeline {event.pipeline_id} {event.status}: {event.url}", actor)
        except Conflict as e:
            return f"ignored: {e}"
        return f"promotion {promotion.id} failed: pipeline {event.status}"
    return f"promotion {promotion.id}: pipeline {event.pipeline_id} {event.status}"


# -- deployment and job events --------------------------------------------------------------
def apply_deployment(session: Session, event: DeploymentEvent, actor: Actor) -> str:
    """Follow a GitLab deployment of a known environment; a failed one fails the image there."""
    project = find_project(session, event.project_id, event.project_path)
    if project is None:
        return f"ignored: GitLab project {event.project_id} is not known here"
    environment = projects.find_environment(session, project.id, event.environment)
    if environment is None:
        return f"ignored: environment {event.environment!r} is not known in {project.path}"
    if project.gitlab_id is None:
        project.gitlab_id = event.project_id
    image = image_for_commit(session, project, event.sha, environment) if event.sha else None
    row = upsert_deployment(session, event.project_id, event.deployment_id,
                            environment=environment, status=event.status, job_id=event.job_id,
                            sha=event.sha, image=image)
    if image is None:
        return f"deployment {event.deployment_id} {event.status}: no image of commit {event.sha}"
    if event.outcome is DeploymentOutcome.FAILED:
        return _deployment_failed(session, row, image, environment, event, actor)
    if event.outcome is DeploymentOutcome.SUCCEEDED:
        return _deployment_succeeded(session, row, image, environment, event, actor)
    return f"deployment {event.deployment_id} of image {image.id} {event.status}"


def _latest_deployment(session: Session, image: Image, environment: Environment
                       ) -> Deployment | None:
    return session.scalar(select(Deployment).where(
        Deployment.image_id == image.id, Deployment.environment_id == environment.id)
        .order_by(Deployment.id.desc()).limit(1))


def _deployment_succeeded(session: Session, row: GitLabDeployment, image: Image,
                          environment: Environment, event: DeploymentEvent, actor: Actor) -> str:
    """A deploy job that does not report to the service (no docker-cd deploy step) still counts.

    The step reports before its job ends, so GitLab's success arrives after it: only when the
    service has no deployment of the image there at all is GitLab's the one recorded.
    """
    from .store.reports import record_deployment

    if _latest_deployment(session, image, environment) is not None:
        return (f"deployment {event.deployment_id} succeeded; the deploy job reported it "
                "to the service")
    deployment = record_deployment(session, actor, image, environment, state="succeeded",
                                   job_url=event.job_url,
                                   message=f"GitLab deployment {event.deployment_id} succeeded")
    row.service_deployment_id = deployment.id
    return f"image {image.id} deployed to {environment.name} (GitLab deployment " \
           f"{event.deployment_id})"


def _deployment_failed(session: Session, row: GitLabDeployment, image: Image,
                       environment: Environment, event: DeploymentEvent, actor: Actor) -> str:
    """A deploy job that died without reporting still shows failed."""
    from .store.reports import record_deployment, update_deployment

    message = f"GitLab deployment {event.deployment_id} {event.status}" + (
        f" ({event.job_url})" if event.job_url else "")
    latest = _latest_deployment(session, image, environment)
    if latest is not None and latest.state != "started":
        return f"deployment {event.deployment_id} {event.status}; the deploy job already " \
               f"reported {latest.state}"
    if latest is None:
        deployment = record_deployment(session, actor, image, environment, state="failed",
                                       job_url=event.job_url, message=message)
    else:
        deployment = update_deployment(session, actor, latest.id, state="failed",
                                       message=message)
    row.service_deployment_id = deployment.id
    return f"image {image.id} in {environment.name}: {message}"


def upsert_deployment(session: Session, project_id: int, deployment_id: int, *,
                      environment: Environment, status: str, job_id: int | None,
                      sha: str | None, image: Image | None) -> GitLabDeployment:
    """Create or update the record of a GitLab deployment."""
    find = select(GitLabDeployment).where(GitLabDeployment.gitlab_project_id == project_id,
                                          GitLabDeployment.deployment_id == deployment_id)
    row = session.scalar(find)
    if row is None:
        try:
            with session.begin_nested():
                row = GitLabDeployment(gitlab_project_id=project_id, deployment_id=deployment_id,
                                       environment=environment.name,
                                       environment_id=environment.id, status=status,
                                       mirrored_approvals=[])
                session.add(row)
        except IntegrityError:  # two events of one deployment at once
            row = session.scalars(find).one()
    row.status = status
    row.job_id = job_id or row.job_id
    row.sha = sha or row.sha
    if image is not None:
        row.image_id = image.id
    row.updated_at = utcnow()
    session.flush()
    return row


def apply_job(session: Session, event: JobEvent, actor: Actor) -> str:
    """Job events only matter for deploy jobs; deployments carry the state."""
    if not event.environment:
        return f"ignored: job {event.job_id} deploys to no environment"
    return f"job {event.job_id} ({event.name}) {event.status} for {event.environment}"
