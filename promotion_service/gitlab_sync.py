"""What GitLab's events change in the service, and what the service tells GitLab back.

SQL-bound (a Session in, the caller commits); no Flask, no HTTP: outgoing calls are written to
the outbox and sent by the dispatcher.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .dispatcher import enqueue
from .domain.actor import Actor
from .domain.gitlab_events import (
    DeploymentEvent,
    DeploymentOutcome,
    JobEvent,
    MergeRequestEvent,
    PipelineEvent,
    PipelineOutcome,
)
from .domain.policy import EnvironmentPolicy, GateFacts, Reason, evaluate
from .errors import Conflict
from .gitlab_models import GitLabDeployment, MergeRequestCheck, WebhookDelivery
from .models import Deployment, Environment, Image, Project, Promotion, Scan, utcnow

log = logging.getLogger(__name__)

IN_FLIGHT = ("requested", "triggered", "deploying", "deployed")
COMMIT_STATUS_CHECK_ID = 0  # merge_request_checks.check_id for the commit-status form


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


def find_environment(session: Session, project: Project, name: str) -> Environment | None:
    """A known environment of the project by its GitLab environment name."""
    return session.scalar(select(Environment).where(
        Environment.project_id == project.id, Environment.name == name))


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
    if promotion.pipeline_id is None:
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
    environment = find_environment(session, project, event.environment)
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
    return f"deployment {event.deployment_id} of image {image.id} {event.status}"


def _deployment_failed(session: Session, row: GitLabDeployment, image: Image,
                       environment: Environment, event: DeploymentEvent, actor: Actor) -> str:
    """A deploy job that died without reporting still shows failed."""
    from .store.reports import record_deployment, update_deployment

    message = f"GitLab deployment {event.deployment_id} {event.status}" + (
        f" ({event.job_url})" if event.job_url else "")
    latest = session.scalar(select(Deployment).where(
        Deployment.image_id == image.id, Deployment.environment_id == environment.id)
        .order_by(Deployment.id.desc()).limit(1))
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
    row = session.scalar(select(GitLabDeployment).where(
        GitLabDeployment.gitlab_project_id == project_id,
        GitLabDeployment.deployment_id == deployment_id))
    if row is None:
        row = GitLabDeployment(gitlab_project_id=project_id, deployment_id=deployment_id,
                               environment=environment.name, environment_id=environment.id,
                               status=status, mirrored_approvals=[])
        session.add(row)
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


# -- merge-request gate ---------------------------------------------------------------------
@dataclass(frozen=True)
class MergeRequestVerdict:
    """The gate's answer for an MR head: passed, failed or pending, with the reasons."""

    status: str
    reasons: tuple[Reason, ...]
    image_id: int | None = None


PENDING_CODES = frozenset({"image_missing", "scan_missing"})


def merge_request_verdict(session: Session, project: Project | None, sha: str,
                          config: Any, now: datetime | None = None) -> MergeRequestVerdict:
    """Evaluate the MR gate: the image of the head commit passed its scan and is not revoked."""
    now = now or utcnow()
    if project is None:
        return MergeRequestVerdict("pending", (Reason(
            "image_missing", "no image is registered for this project yet",
            "let the merge request pipeline build, scan and register the image"),))
    image = image_for_commit(session, project, sha)
    if image is None:
        return MergeRequestVerdict("pending", (Reason(
            "image_missing", f"no image is registered for commit {sha[:12]} yet",
            "let the merge request pipeline build, scan and register the image",
            {"sha": sha}),))
    scan = session.scalar(select(Scan).where(Scan.image_id == image.id)
                          .order_by(Scan.id.desc()).limit(1))
    policy = merge_request_policy(session, project, config)
    facts = GateFacts(
        environment="merge request", now=now,
        revoked=image.revoked_at is not None, revoked_reason=image.revoked_reason or "",
        scan_counts=scan.counts if scan is not None else None,
        scan_findings=tuple(scan.findings or ()) if scan is not None else (),
    )
    decision = evaluate(policy, facts)
    if decision.allowed:
        return MergeRequestVerdict("passed", (), image.id)
    pending = all(r.code in PENDING_CODES for r in decision.reasons)
    return MergeRequestVerdict("pending" if pending else "failed", decision.reasons, image.id)


def merge_request_policy(session: Session, project: Project, config: Any) -> EnvironmentPolicy:
    """The MR's scan gate: PROMOTION_GITLAB_MR_MAX_SEVERITY, else the first environment's."""
    configured = (config.get("GITLAB_MR_MAX_SEVERITY") or "").strip().lower() or None
    if configured is None:
        first = session.scalar(select(Environment).where(Environment.project_id == project.id)
                               .order_by(Environment.position).limit(1))
        configured = (first.policy or {}).get("max_severity") if first is not None else None
    return EnvironmentPolicy.from_dict({"max_severity": configured or "high"},
                                       "PROMOTION_GITLAB_MR_MAX_SEVERITY")


def check_merge_request(session: Session, event: MergeRequestEvent, config: Any, *,
                        check_id: int, always_answer: bool = True) -> MergeRequestCheck:
    """Evaluate an MR's gate, keep the answer, and queue it for GitLab."""
    project = find_project(session, event.project_id, event.project_path)
    verdict = merge_request_verdict(session, project, event.sha, config)
    row = session.scalar(select(MergeRequestCheck).where(
        MergeRequestCheck.gitlab_project_id == event.project_id,
        MergeRequestCheck.mr_iid == event.mr_iid, MergeRequestCheck.check_id == check_id))
    if row is None:
        row = MergeRequestCheck(gitlab_project_id=event.project_id, mr_iid=event.mr_iid,
                                check_id=check_id, project_path=event.project_path)
        session.add(row)
    if row.sha != event.sha:
        row.answered = None
    row.sha, row.ref, row.mr_url = event.sha, event.source_branch, event.url
    _set_verdict(row, verdict)
    _answer(session, row, force=always_answer, config=config)
    session.flush()
    return row


def _set_verdict(row: MergeRequestCheck, verdict: MergeRequestVerdict) -> None:
    row.status = verdict.status
    row.reasons = [r.to_dict() for r in verdict.reasons]
    row.updated_at = utcnow()


def _answer(session: Session, row: MergeRequestCheck, *, force: bool, config: Any) -> None:
    """Queue the answer when it changed (or always, for a fresh delivery)."""
    if not force and row.answered == row.status:
        return
    project = row.gitlab_project_id
    summary = "; ".join(r["message"] for r in row.reasons) or "the image passed the gate"
    if row.check_id == COMMIT_STATUS_CHECK_ID:
        state = {"passed": "success", "failed": "failed", "pending": "pending"}[row.status]
        enqueue(session, "commit_status", {
            "gitlab_project_id": project, "project_path": row.project_path, "sha": row.sha,
            "ref": row.ref, "state": state, "description": summary,
            "target_url": _check_url(config, row),
        })
    else:
        enqueue(session, "status_check_response", {
            "gitlab_project_id": project, "project_path": row.project_path,
            "mr_iid": row.mr_iid, "sha": row.sha, "check_id": row.check_id,
            "status": row.status,
        })
    row.answered = row.status


def _check_url(config: Any, row: MergeRequestCheck) -> str | None:
    base = (config.get("PUBLIC_URL") or "").rstrip("/")
    return f"{base}/api/v1/merge-request-checks/{row.id}" if base and row.id else None


def recheck_pending(session: Session, config: Any, limit: int = 200) -> int:
    """Re-evaluate MR checks still pending; answer GitLab when the image's state changed."""
    changed = 0
    rows = session.scalars(select(MergeRequestCheck).where(MergeRequestCheck.status == "pending")
                           .order_by(MergeRequestCheck.updated_at).limit(limit)).all()
    for row in rows:
        project = find_project(session, row.gitlab_project_id, row.project_path)
        verdict = merge_request_verdict(session, project, row.sha, config)
        if verdict.status == row.status:
            continue
        _set_verdict(row, verdict)
        _answer(session, row, force=False, config=config)
        changed += 1
    return changed


def checks_payload(row: MergeRequestCheck) -> dict[str, Any]:
    """The API form of a merge-request check."""
    return {
        "id": row.id, "gitlab_project_id": row.gitlab_project_id,
        "project": row.project_path, "mr_iid": row.mr_iid,
        "check_id": row.check_id or None, "sha": row.sha, "ref": row.ref, "url": row.mr_url,
        "status": row.status, "reasons": row.reasons, "answered": row.answered,
        "updated_at": row.updated_at.isoformat() if row.updated_at else None,
    }


# -- deployment approvals -------------------------------------------------------------------
def _flag(config: Any, key: str) -> bool:
    return str(config.get(key) or "").lower() in ("1", "true", "yes", "on")


def plays_jobs(config: Any, project_path: str) -> bool:
    """PROMOTION_GITLAB_PLAY_APPROVED_JOBS: 1 (every project) or a comma list of project paths."""
    value = str(config.get("GITLAB_PLAY_APPROVED_JOBS") or "").strip()
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    return project_path in {p.strip() for p in value.split(",") if p.strip()}


def approval_targets(session: Session) -> list[tuple[int, int, str]]:
    """(environment id, GitLab project id, environment name) of environments needing approvals."""
    from .store.projects import policy_of

    rows = session.execute(
        select(Environment, Project.gitlab_id).join(Project, Project.id == Environment.project_id)
        .where(Environment.position > 0, Project.gitlab_id.is_not(None))).all()
    return [(env.id, gitlab_id, env.name) for env, gitlab_id in rows
            if policy_of(env).required_approvals > 0]


def sync_blocked_deployments(session: Session, config: Any, client: Any = None) -> int:
    """Bring GitLab's blocked deployments and the service's approvals together.

    With PROMOTION_GITLAB_DEPLOYMENT_APPROVALS=1, for each environment that needs approvals:
    approvals given in GitLab are recorded in the service (actor ``gitlab:<username>``); once the
    service's gate allows the image, the deployment is approved in GitLab (once, as the token's
    user); when the project asks for it (PROMOTION_GITLAB_PLAY_APPROVED_JOBS: 1 or a comma list
    of project paths) the waiting job is then played, since GitLab never starts it by itself.
    """
    if not _flag(config, "GITLAB_DEPLOYMENT_APPROVALS"):
        return 0
    from .db import begin_write
    from .dispatcher import client_from_config
    from .gitlab import GitLabError

    client = client or client_from_config(config)
    targets = approval_targets(session)
    session.commit()  # no transaction held while GitLab answers
    fetched = []
    for env_id, gitlab_id, name in targets:
        try:
            fetched.append((env_id, gitlab_id,
                            client.list_deployments(gitlab_id, environment=name)))
        except GitLabError as e:
            log.warning("cannot read blocked deployments of %s in project %s: %s",
                        name, gitlab_id, e)
    begin_write(session)
    changes = 0
    for env_id, gitlab_id, deployments in fetched:
        environment = session.get(Environment, env_id)
        project = session.get(Project, environment.project_id)
        for deployment in deployments:
            changes += _sync_one(session, config, project, environment, gitlab_id, deployment)
    return changes


def _sync_one(session: Session, config: Any, project: Project, environment: Environment,
              gitlab_id: int, deployment: Any) -> int:
    from .errors import ServiceError
    from .store import approvals as approval_store
    from .store import gate

    image = image_for_commit(session, project, deployment.sha, environment) \
        if deployment.sha else None
    row = upsert_deployment(session, gitlab_id, deployment.id, environment=environment,
                            status=deployment.status, job_id=deployment.job_id,
                            sha=deployment.sha, image=image)
    if image is None:
        return 0
    done = list(row.mirrored_approvals or [])
    changes = 0
    for given in deployment.approvals:
        marker = f"in:{given.username}:{given.status}"
        if marker in done or given.status not in ("approved", "rejected"):
            continue
        actor = Actor(name=f"gitlab:{given.username}", role="approver")
        try:
            approval_store.decide(
                session, actor, image, environment,
                decision="approve" if given.status == "approved" else "reject",
                comment=f"in GitLab (deployment {deployment.id})"
                        + (f": {given.comment}" if given.comment else ""))
        except ServiceError as e:
            log.warning("GitLab approval by %s not recorded: %s", given.username, e.message)
        done.append(marker)
        changes += 1
    allowed = gate.decide(session, image, environment).allowed
    if allowed and "out:approved" not in done and (deployment.pending_approval_count or 0) > 0:
        names = sorted({a.actor for a in approval_store.standing(session, image.id, environment.id)
                        if a.decision == "approve" and not a.actor.startswith("gitlab:")})
        if names:
            enqueue(session, "deployment_approval", {
                "gitlab_project_id": gitlab_id, "project_path": project.path,
                "deployment_id": deployment.id, "status": "approved",
                "comment": f"docker-cd: policy for {environment.name} satisfied "
                           f"(approved in the service by {', '.join(names)})"})
            done.append("out:approved")
            changes += 1
    if (allowed and plays_jobs(config, project.path) and row.played_at is None
            and deployment.job_id and (deployment.pending_approval_count or 0) == 0):
        enqueue(session, "play_job", {"gitlab_project_id": gitlab_id,
                                      "project_path": project.path, "job_id": deployment.job_id})
        row.played_at = utcnow()
        changes += 1
    row.mirrored_approvals = done
    session.flush()
    return changes
