"""Deployment approvals kept in step with GitLab's protected environments, and playing the job.

GitLab is read here (between transactions), written to through the outbox.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session

from ..config import is_on
from ..db import begin_write
from ..db.models import Environment, Project, utcnow
from ..domain.actor import Actor
from ..domain.identity import IdentityError, from_gitlab
from ..errors import ServiceError
from ..services import gate
from ..services.approvals import record_decision
from ..services.projects import policy_of
from ..store import approvals, gitlab_deployments, outbox, projects, releases
from .client import Deployment, client_from_config
from .errors import GitLabError

log = logging.getLogger(__name__)


def plays_jobs(config: Any, project_path: str) -> bool:
    """PROMOTION_GITLAB_PLAY_APPROVED_JOBS: 1 (every project) or a comma list of project paths."""
    value = str(config.get("GITLAB_PLAY_APPROVED_JOBS") or "").strip()
    if is_on(value):
        return True
    return project_path in {p.strip() for p in value.split(",") if p.strip()}


def approval_targets(session: Session) -> list[tuple[int, int, str]]:
    """(environment id, GitLab project id, environment name) of environments needing approvals."""
    return [(env.id, gitlab_id, env.name)
            for env, gitlab_id in projects.later_environments_in_gitlab(session)
            if policy_of(env).required_approvals > 0]


def sync_blocked_deployments(session: Session, config: Any, client: Any = None) -> int:
    """Bring GitLab's blocked deployments and the service's approvals together.

    With PROMOTION_GITLAB_DEPLOYMENT_APPROVALS=1, for each environment that needs approvals,
    each deployment GitLab holds (or held at the last sync) is read whole: GitLab's list
    leaves the approvals out. Approvals given in GitLab are recorded in the service, as the
    person of that GitLab username (``Alice`` in GitLab is the person ``alice``); once the
    service's gate allows the image, the deployment is approved in GitLab (once, as
    PROMOTION_GITLAB_APPROVER_TOKEN's user: GitLab refuses the user who ran the pipeline); when
    the project asks for it (PROMOTION_GITLAB_PLAY_APPROVED_JOBS: 1 or a comma list of project
    paths) the job is played once GitLab no longer waits for an approval, since it never starts
    it by itself.
    """
    if not is_on(config.get("GITLAB_DEPLOYMENT_APPROVALS")):
        return 0
    client = client or client_from_config(config)
    targets = [(env_id, gitlab_id, name, gitlab_deployments.last_seen_blocked(session, env_id))
               for env_id, gitlab_id, name in approval_targets(session)]
    session.commit()  # no transaction held while GitLab answers
    fetched = []
    for env_id, gitlab_id, name, seen in targets:
        try:
            listed = [d.id for d in client.list_deployments(gitlab_id, environment=name)]
            ids = sorted(set(listed) | set(seen), reverse=True)
            fetched.append((env_id, gitlab_id,
                            [client.get_deployment(gitlab_id, i) for i in ids]))
        except GitLabError as e:
            log.warning("cannot read blocked deployments of %s in project %s: %s",
                        name, gitlab_id, e)
    begin_write(session)
    changes = 0
    for env_id, gitlab_id, deployments in fetched:
        environment = session.get(Environment, env_id)
        project = session.get(Project, environment.project_id)
        for deployment in deployments:
            changes += _sync_one(session, config, project, environment, gitlab_id, deployment,
                                 approver=client.can_approve)
    return changes


def _sync_one(session: Session, config: Any, project: Project, environment: Environment,
              gitlab_id: int, deployment: Deployment, *, approver: bool) -> int:
    release = releases.of_commit(session, project.id, deployment.sha, environment.id) \
        if deployment.sha else None
    row = gitlab_deployments.upsert(session, gitlab_id, deployment.id, environment=environment,
                                    status=deployment.status, job_id=deployment.job_id,
                                    sha=deployment.sha, release=release)
    if release is None:
        return 0
    # Several dispatchers run this: the row lock (PostgreSQL; SQLite serialises writers) makes
    # each approval recorded, mirrored and each job played once.
    gitlab_deployments.lock(session, row)
    done = list(row.mirrored_approvals or [])
    changes = _record_gitlab_approvals(session, release, environment, deployment, done)
    allowed = gate.decide(session, release, environment).allowed
    if allowed and approver and deployment.waits_for_approval and "out:approved" not in done:
        names = sorted({a.actor for a in approvals.standing(session, release.id, environment.id)
                        if a.decision == "approve" and a.given_in != "gitlab"})
        if names:
            outbox.enqueue(session, "deployment_approval", {
                "gitlab_project_id": gitlab_id, "project_path": project.path,
                "deployment_id": deployment.id, "status": "approved",
                "comment": f"docker-cd: policy for {environment.name} satisfied "
                           f"(approved in the service by {', '.join(names)})"})
            done.append("out:approved")
            changes += 1
    if (allowed and deployment.playable and plays_jobs(config, project.path)
            and row.played_at is None):
        outbox.enqueue(session, "play_job", {"gitlab_project_id": gitlab_id,
                                             "project_path": project.path,
                                             "deployment_id": deployment.id,
                                             "job_id": deployment.job_id})
        row.played_at = utcnow()
        changes += 1
    row.mirrored_approvals = done
    session.flush()
    return changes


def _record_gitlab_approvals(session: Session, release: Any, environment: Environment,
                             deployment: Deployment, done: list[str]) -> int:
    """Approvals and rejections given in GitLab, each recorded once in the service."""
    changes = 0
    for given in deployment.approvals:
        marker = f"in:{given.username}:{given.status}"
        if marker in done or given.status not in ("approved", "rejected"):
            continue
        try:
            # the GitLab user is the person of that username: alice in GitLab is alice here
            actor = Actor(name=from_gitlab(given.username), role="approver")
            record_decision(
                session, actor, release, environment,
                decision="approve" if given.status == "approved" else "reject",
                comment=f"in GitLab (deployment {deployment.id})"
                        + (f": {given.comment}" if given.comment else ""), given_in="gitlab")
        except IdentityError as e:
            log.warning("GitLab approval by %r not recorded: %s", given.username, e)
        except ServiceError as e:
            log.warning("GitLab approval by %s not recorded: %s", given.username, e.message)
        done.append(marker)
        changes += 1
    return changes
