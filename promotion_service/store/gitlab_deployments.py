"""GitLab deployments of known environments, tied to the releases they deploy."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..db.gitlab_models import GitLabDeployment
from ..db.models import Environment, Release, utcnow


def upsert(session: Session, project_id: int, deployment_id: int, *,
           environment: Environment, status: str, job_id: int | None,
           sha: str | None, release: Release | None) -> GitLabDeployment:
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
    if release is not None:
        row.release_id = release.id
    row.updated_at = utcnow()
    session.flush()
    return row


def lock(session: Session, row: GitLabDeployment) -> None:
    """Re-read the row under a row lock (PostgreSQL; SQLite serialises writers anyway)."""
    session.refresh(row, with_for_update=True)


def unplayed(session: Session, project_id: int, deployment_id: int) -> None:
    """GitLab refused to play the deployment's job: the next sync may play it again."""
    row = session.scalar(select(GitLabDeployment).where(
        GitLabDeployment.gitlab_project_id == project_id,
        GitLabDeployment.deployment_id == deployment_id))
    if row is not None:
        row.played_at = None


def last_seen_blocked(session: Session, environment_id: int) -> list[int]:
    """GitLab deployment ids of an environment the service last saw held for approval."""
    return list(session.scalars(select(GitLabDeployment.deployment_id).where(
        GitLabDeployment.environment_id == environment_id,
        GitLabDeployment.status == "blocked")))
