"""What GitLab's webhook deliveries change in the service: pipelines, deployments, jobs and
merge requests, each delivery applied once.

A delivery seen before (same key) changes nothing. Unknown projects, environments and event
kinds are acknowledged and ignored: the outcome says why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from ..config import is_on
from ..db import write_transaction
from ..db.gitlab_models import GitLabDeployment
from ..db.models import Environment, Release, utcnow
from ..domain.actor import Actor
from ..domain.gitlab_events import (
    DeploymentEvent,
    DeploymentOutcome,
    JobEvent,
    MergeRequestEvent,
    PipelineEvent,
    PipelineOutcome,
)
from ..domain.states import IN_FLIGHT
from ..errors import Conflict
from ..services.promotion import mark_failed, mark_triggered
from ..services.reports import add_deployment, update_deployment
from ..store import deliveries, deployments, gitlab_deployments, projects, promotions, releases
from . import merge_request_gate

Event = PipelineEvent | DeploymentEvent | JobEvent | MergeRequestEvent


def gitlab_actor(username: str | None, request_id: str | None = None,
                 source_ip: str | None = None) -> Actor:
    """The audit log's actor for something a GitLab user did."""
    return Actor(name=f"gitlab:{username or 'unknown'}", role="system",
                 request_id=request_id, source_ip=source_ip)


def receive(session: Session, config: Mapping[str, Any], event: Event, *,
            keys: Sequence[str], event_name: str, actor: Actor) -> str | None:
    """Apply one delivery in one transaction: what it did, or None if it was seen before."""
    with write_transaction(session):
        if deliveries.seen_before(session, keys, event_name,
                                  getattr(event, "project_id", None)):
            return None
        outcome = apply(session, config, event, actor)
        deliveries.note_outcome(session, keys, outcome)
    return outcome


def apply(session: Session, config: Mapping[str, Any], event: Event, actor: Actor) -> str:
    """Change the service as the event says; the outcome, for the log and the delivery."""
    if isinstance(event, PipelineEvent):
        return apply_pipeline(session, event, actor)
    if isinstance(event, DeploymentEvent):
        return apply_deployment(session, event, actor)
    if isinstance(event, JobEvent):
        return apply_job(event)
    if not is_on(config.get("GITLAB_GATE_COMMIT_STATUS")):
        return ("ignored: merge request events are used only with "
                "PROMOTION_GITLAB_GATE_COMMIT_STATUS=1")
    if event.state != "opened":
        return f"ignored: merge request !{event.mr_iid} is {event.state}"
    row = merge_request_gate.check_merge_request(
        session, event, config, check_id=merge_request_gate.COMMIT_STATUS_CHECK_ID,
        always_answer=False)
    return f"merge request !{event.mr_iid} gate {row.status} (commit status)"


def prune_deliveries(session: Session, keep_days: float = 7.0) -> int:
    """Forget delivery keys older than GitLab would ever redeliver (it retries for hours)."""
    cutoff = utcnow() - timedelta(days=keep_days)
    if not deliveries.any_before(session, cutoff):  # looked without the writers' lock
        return 0
    with write_transaction(session):
        return deliveries.forget_before(session, cutoff)


# -- pipeline events ------------------------------------------------------------------------
def apply_pipeline(session: Session, event: PipelineEvent, actor: Actor) -> str:
    """Tie a triggered pipeline to its promotion and fail the promotion if the pipeline fails."""
    if event.promotion_id is None:
        return "ignored: not a pipeline the service triggered (no CD_PROMOTION_ID)"
    promotion = promotions.get(session, event.promotion_id)
    project = projects.by_gitlab_project(session, event.project_id, event.project_path)
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
    """Follow a GitLab deployment of a known environment; a failed one fails the release there."""
    project = projects.by_gitlab_project(session, event.project_id, event.project_path)
    if project is None:
        return f"ignored: GitLab project {event.project_id} is not known here"
    environment = projects.environment(session, project.id, event.environment)
    if environment is None:
        return f"ignored: environment {event.environment!r} is not known in {project.path}"
    if project.gitlab_id is None:
        project.gitlab_id = event.project_id
    release = releases.of_commit(session, project.id, event.sha, environment.id) \
        if event.sha else None
    row = gitlab_deployments.upsert(session, event.project_id, event.deployment_id,
                                    environment=environment, status=event.status,
                                    job_id=event.job_id, sha=event.sha, release=release)
    if release is None:
        return (f"deployment {event.deployment_id} {event.status}: no release of commit "
                f"{event.sha}")
    try:
        if event.outcome is DeploymentOutcome.FAILED:
            return _deployment_failed(session, row, release, environment, event, actor)
        if event.outcome is DeploymentOutcome.SUCCEEDED:
            return _deployment_succeeded(session, row, release, environment, event, actor)
    except Conflict as e:  # a gated environment takes only what a promotion in flight deploys
        return f"ignored: deployment {event.deployment_id} {event.status}: {e.message}"
    return f"deployment {event.deployment_id} of release {release.id} {event.status}"


def _deployment_succeeded(session: Session, row: GitLabDeployment, release: Release,
                          environment: Environment, event: DeploymentEvent, actor: Actor) -> str:
    """A deploy job that does not report to the service (no docker-cd deploy step) still counts.

    The step reports before its job ends, so GitLab's success arrives after it: only when the
    service has no deployment of the release there at all is GitLab's the one recorded.
    """
    if deployments.latest(session, release.id, environment.id) is not None:
        return (f"deployment {event.deployment_id} succeeded; the deploy job reported it "
                "to the service")
    deployment = add_deployment(session, actor, release, environment, state="succeeded",
                                job_url=event.job_url,
                                message=f"GitLab deployment {event.deployment_id} succeeded")
    row.service_deployment_id = deployment.id
    return f"release {release.id} deployed to {environment.name} (GitLab deployment " \
           f"{event.deployment_id})"


def _deployment_failed(session: Session, row: GitLabDeployment, release: Release,
                       environment: Environment, event: DeploymentEvent, actor: Actor) -> str:
    """A deploy job that died without reporting still shows failed."""
    message = f"GitLab deployment {event.deployment_id} {event.status}" + (
        f" ({event.job_url})" if event.job_url else "")
    latest = deployments.latest(session, release.id, environment.id)
    if latest is not None and latest.state != "started":
        return f"deployment {event.deployment_id} {event.status}; the deploy job already " \
               f"reported {latest.state}"
    if latest is None:
        deployment = add_deployment(session, actor, release, environment, state="failed",
                                    job_url=event.job_url, message=message)
    else:
        deployment = update_deployment(session, actor, latest.id, state="failed",
                                       message=message)
    row.service_deployment_id = deployment.id
    return f"release {release.id} in {environment.name}: {message}"


def apply_job(event: JobEvent) -> str:
    """Job events only matter for deploy jobs; deployments carry the state."""
    if not event.environment:
        return f"ignored: job {event.job_id} deploys to no environment"
    return f"job {event.job_id} ({event.name}) {event.status} for {event.environment}"
