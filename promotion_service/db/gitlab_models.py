"""Tables of the GitLab integration (migration 0002): deliveries seen, MR checks, deployments."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from .models import Base, utcnow


class WebhookDelivery(Base):
    """A webhook delivery already handled: a replay or redelivery with the same key is a no-op."""

    __tablename__ = "webhook_deliveries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(255), unique=True)
    event: Mapped[str] = mapped_column(String(64))
    gitlab_project_id: Mapped[int | None] = mapped_column(BigInteger)
    outcome: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class MergeRequestCheck(Base):
    """The gate's answer for a merge request's head commit (status check or commit status)."""

    __tablename__ = "merge_request_checks"
    __table_args__ = (
        UniqueConstraint("gitlab_project_id", "mr_iid", "check_id", name="uq_mr_checks_mr_check"),
        Index("ix_merge_request_checks_sha", "sha"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    gitlab_project_id: Mapped[int] = mapped_column(BigInteger)
    project_path: Mapped[str] = mapped_column(String(255))
    mr_iid: Mapped[int] = mapped_column(Integer)
    check_id: Mapped[int] = mapped_column(BigInteger)  # 0: answered as a commit status
    sha: Mapped[str] = mapped_column(String(64))
    ref: Mapped[str | None] = mapped_column(String(255))
    mr_url: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))  # pending | passed | failed
    reasons: Mapped[list[Any]] = mapped_column(JSON, default=list)
    answered: Mapped[str | None] = mapped_column(String(16))  # last status sent to GitLab
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class GitLabDeployment(Base):
    """A GitLab deployment of a known environment, tied to the release it deploys."""

    __tablename__ = "gitlab_deployments"
    __table_args__ = (
        UniqueConstraint("gitlab_project_id", "deployment_id", name="uq_gitlab_deployments_id"),
        Index("ix_gitlab_deployments_status", "status", "environment_id"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    gitlab_project_id: Mapped[int] = mapped_column(BigInteger)
    deployment_id: Mapped[int] = mapped_column(BigInteger)
    environment: Mapped[str] = mapped_column(String(64))
    job_id: Mapped[int | None] = mapped_column(BigInteger)
    sha: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    release_id: Mapped[int | None] = mapped_column(
        ForeignKey("releases.id", ondelete="CASCADE"))
    environment_id: Mapped[int | None] = mapped_column(
        ForeignKey("environments.id", ondelete="CASCADE")
    )
    service_deployment_id: Mapped[int | None] = mapped_column(ForeignKey("deployments.id"))
    mirrored_approvals: Mapped[list[Any]] = mapped_column(JSON, default=list)
    played_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
