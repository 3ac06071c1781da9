"""The service's tables (SQLAlchemy 2 declarative); schema changes go through migrations/."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from ..domain.actor import ROLES
from ..domain.states import IN_FLIGHT, DeploymentState, PromotionState

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
PROMOTION_KINDS = ("auto", "approval", "manual", "rollback")
OUTBOX_STATES = ("pending", "sent", "failed")


def utcnow() -> datetime:
    """Naive UTC: the same value on SQLite and PostgreSQL."""
    return datetime.now(UTC).replace(tzinfo=None)


def _in(column: str, values: Any) -> str:
    return f"{column} IN ({', '.join(repr(str(v)) for v in sorted(values))})"


class Base(DeclarativeBase):
    """Declarative base; its metadata is what alembic compares against."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class ReleaseInEnvironment:
    """Columns of a row about one release in one environment (both go with their parents)."""

    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"))
    environment_id: Mapped[int] = mapped_column(
        ForeignKey("environments.id", ondelete="CASCADE"))


class RegisteredByPipeline:
    """Columns of what a pipeline registers (an image, a release): its facts and who sent it."""

    commit_sha: Mapped[str | None] = mapped_column(String(64))
    commit_time: Mapped[datetime | None] = mapped_column(DateTime)
    ref: Mapped[str | None] = mapped_column(String(255))
    tags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    pipeline_id: Mapped[int | None] = mapped_column(BigInteger)
    pipeline_url: Mapped[str | None] = mapped_column(Text)
    triggered_by: Mapped[str | None] = mapped_column(String(255))  # the pipeline's user
    commit_author: Mapped[str | None] = mapped_column(String(255))  # `Name <e-mail>`, as git says
    registered_by: Mapped[str] = mapped_column(String(255))
    registered_via: Mapped[str | None] = mapped_column(String(16))  # token | id_token
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Project(Base):
    """A GitLab project whose images walk through its environments."""

    __tablename__ = "projects"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(String(255), unique=True)
    gitlab_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Environment(Base):
    """One environment of a project, in order, with its policy and any hold."""

    __tablename__ = "environments"
    __table_args__ = (
        UniqueConstraint("project_id", "name", name="uq_environments_project_name"),
        UniqueConstraint("project_id", "position", name="uq_environments_project_position"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(Integer)
    policy: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    hold_reason: Mapped[str | None] = mapped_column(Text)
    hold_by: Mapped[str | None] = mapped_column(String(255))
    hold_at: Mapped[datetime | None] = mapped_column(DateTime)


class Image(RegisteredByPipeline, Base):
    """An image, named by repository and digest, never by tag."""

    __tablename__ = "images"
    __table_args__ = (
        UniqueConstraint("repository", "digest", name="uq_images_repository_digest"),
        Index("ix_images_project_id_id", "project_id", "id"),
        Index("ix_images_commit_sha", "commit_sha"),
        Index("ix_images_revoked", "id", sqlite_where=text("revoked_at IS NOT NULL"),
              postgresql_where=text("revoked_at IS NOT NULL")),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    repository: Mapped[str] = mapped_column(String(255))
    digest: Mapped[str] = mapped_column(String(71))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)
    revoked_by: Mapped[str | None] = mapped_column(String(255))
    revoked_reason: Mapped[str | None] = mapped_column(Text)


class Release(RegisteredByPipeline, Base):
    """The ledger's unit: images by digest (its members) and the template they run with,
    named by a content hash of both. The pipeline facts are the registering pipeline's."""

    __tablename__ = "releases"
    __table_args__ = (
        UniqueConstraint("digest", name="uq_releases_digest"),
        Index("ix_releases_project_id_id", "project_id", "id"),
        Index("ix_releases_commit_sha", "commit_sha"),
        Index("ix_releases_revoked", "id", sqlite_where=text("revoked_at IS NOT NULL"),
              postgresql_where=text("revoked_at IS NOT NULL")),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    digest: Mapped[str] = mapped_column(String(71))
    template_hash: Mapped[str | None] = mapped_column(String(71))
    member_count: Mapped[int] = mapped_column(Integer)
    # set when a member's image is revoked (the member and why are in revoked_reason)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)
    revoked_reason: Mapped[str | None] = mapped_column(Text)
    members: Mapped[list[ReleaseMember]] = relationship(
        order_by="ReleaseMember.name", lazy="selectin", viewonly=True)

    @property
    def label(self) -> str:
        """How messages name the release: its image when it has one, else its id and digest."""
        if len(self.members) == 1:
            return f"{self.members[0].repository}@{self.members[0].digest}"
        return f"release {self.id} ({self.digest[:19]})"


class ReleaseMember(Base):
    """One image of a release, under its Compose service name (repository and digest are the
    image's, kept here so a release reads in one query)."""

    __tablename__ = "release_members"
    __table_args__ = (Index("ix_release_members_image_id", "image_id"),
                      Index("ix_release_members_repository_digest", "repository", "digest"))
    release_id: Mapped[int] = mapped_column(
        ForeignKey("releases.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    repository: Mapped[str] = mapped_column(String(255))
    digest: Mapped[str] = mapped_column(String(71))
    built: Mapped[bool] = mapped_column(Boolean, default=True)


class Scan(Base):
    """A scan summary for an image (the gate reads the latest)."""

    __tablename__ = "scans"
    __table_args__ = (Index("ix_scans_image_id_id", "image_id", "id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    scanner: Mapped[str] = mapped_column(String(64))
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    findings: Mapped[list[Any]] = mapped_column(JSON, default=list)
    report_url: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Deployment(ReleaseInEnvironment, Base):
    """A deploy job's report for a release in an environment."""

    __tablename__ = "deployments"
    __table_args__ = (
        CheckConstraint(_in("state", DeploymentState), name="state"),
        Index("ix_deployments_release_env", "release_id", "environment_id"),
        Index("ix_deployments_environment_id_id", "environment_id", "id"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    promotion_id: Mapped[int | None] = mapped_column(ForeignKey("promotions.id"))
    state: Mapped[str] = mapped_column(String(16))
    record_id: Mapped[str | None] = mapped_column(String(64))  # the target's release record
    rollback_of: Mapped[str | None] = mapped_column(String(64))  # the record it restored
    job_url: Mapped[str | None] = mapped_column(Text)
    message: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    template_hash: Mapped[str | None] = mapped_column(String(71))  # the rendered template's


class Verification(ReleaseInEnvironment, Base):
    """Smoke-check result for a release in an environment."""

    __tablename__ = "verifications"
    __table_args__ = (Index("ix_verifications_release_env", "release_id", "environment_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    passed: Mapped[bool] = mapped_column(Boolean)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    job_url: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ApprovalRecord(ReleaseInEnvironment, Base):
    """An approval or rejection of a release for an environment."""

    __tablename__ = "approvals"
    __table_args__ = (
        CheckConstraint("decision IN ('approve', 'reject')", name="decision"),
        Index(
            "uq_approvals_standing", "release_id", "environment_id", "actor", unique=True,
            sqlite_where=text("withdrawn_at IS NULL"),
            postgresql_where=text("withdrawn_at IS NULL"),
        ),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    actor: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(32))
    decision: Mapped[str] = mapped_column(String(8))
    comment: Mapped[str | None] = mapped_column(Text)
    token_id: Mapped[int | None] = mapped_column(Integer)  # the token it was given with, if any
    given_in: Mapped[str] = mapped_column(String(16), default="service")  # service | gitlab
    expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime)
    withdrawn_by: Mapped[str | None] = mapped_column(String(255))
    # The template this approval is for: given with it, or the first one it let deploy.
    template_hash: Mapped[str | None] = mapped_column(String(71))


class Promotion(ReleaseInEnvironment, Base):
    """A release on its way into an environment."""

    __tablename__ = "promotions"
    __table_args__ = (
        CheckConstraint(_in("state", PromotionState), name="state"),
        CheckConstraint(_in("kind", PROMOTION_KINDS), name="kind"),
        Index(
            "uq_promotions_in_flight", "release_id", "environment_id", unique=True,
            sqlite_where=text(_in("state", IN_FLIGHT)),
            postgresql_where=text(_in("state", IN_FLIGHT)),
        ),
        Index("ix_promotions_environment_id_id", "environment_id", "id"),
        Index("ix_promotions_release_id_id", "release_id", "id"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    state: Mapped[str] = mapped_column(String(16), default=PromotionState.REQUESTED.value)
    kind: Mapped[str] = mapped_column(String(16))
    requested_by: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str | None] = mapped_column(Text)
    pipeline_id: Mapped[int | None] = mapped_column(BigInteger)
    pipeline_url: Mapped[str | None] = mapped_column(Text)
    record_id: Mapped[str | None] = mapped_column(String(64))  # what a rollback restores
    failure_message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Outbox(Base):
    """Work for the dispatcher, written in the same transaction as the promotion."""

    __tablename__ = "outbox"
    __table_args__ = (
        CheckConstraint(_in("state", OUTBOX_STATES), name="state"),
        Index("ix_outbox_state_available_at", "state", "available_at"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    promotion_id: Mapped[int | None] = mapped_column(
        ForeignKey("promotions.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    available_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    locked_by: Mapped[str | None] = mapped_column(String(255))
    locked_until: Mapped[datetime | None] = mapped_column(DateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime)


class Rollout(ReleaseInEnvironment, Base):
    """A release that went live in an environment (the latest not rolled back is current)."""

    __tablename__ = "rollouts"
    __table_args__ = (Index("ix_rollouts_environment_id_id", "environment_id", "id"),
                      Index("ix_rollouts_release_env_id", "release_id", "environment_id", "id"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    promotion_id: Mapped[int | None] = mapped_column(ForeignKey("promotions.id"))
    deployment_id: Mapped[int | None] = mapped_column(ForeignKey("deployments.id"))
    record_id: Mapped[str | None] = mapped_column(String(64))  # the target's release record
    rollback_of: Mapped[str | None] = mapped_column(String(64))  # the record it restored
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    verified_at: Mapped[datetime | None] = mapped_column(DateTime)
    rolled_back_at: Mapped[datetime | None] = mapped_column(DateTime)
    rolled_back_by: Mapped[str | None] = mapped_column(String(255))
    rolled_back_reason: Mapped[str | None] = mapped_column(Text)


class EmergencyStop(Base):
    """Promotion into an environment name is frozen across all projects until lifted."""

    __tablename__ = "stops"
    __table_args__ = (Index("ix_stops_environment_lifted", "environment", "lifted_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    environment: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    lifted_at: Mapped[datetime | None] = mapped_column(DateTime)
    lifted_by: Mapped[str | None] = mapped_column(String(255))


class Token(Base):
    """An API token of a person (one person may hold several): only its SHA-256 is stored."""

    __tablename__ = "tokens"
    __table_args__ = (CheckConstraint(_in("role", ROLES), name="role"),
                      Index("ix_tokens_person", "person"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    person: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(32))
    project: Mapped[str | None] = mapped_column(String(255))
    token_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)
    # web sessions opened with this token before this time are over (sign-out)
    signed_out_at: Mapped[datetime | None] = mapped_column(DateTime)


class AuditEntry(Base):
    """One change; append-only, chained by hash."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_subject", "subject_type", "subject_id"),
                      Index("ix_audit_log_action_id", "action", "id"),
                      Index("ix_audit_log_actor_id", "actor", "id"),
                      Index("ix_audit_log_project_id_id", "project_id", "id"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(64))
    subject_type: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str | None] = mapped_column(String(64))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    request_id: Mapped[str | None] = mapped_column(String(64))
    source_ip: Mapped[str | None] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The project the subject belonged to when the entry was written (NULL: about no project),
    # so that a project's entries are one range of an index. Not among the hashed fields (the
    # chains written before it existed verify unchanged); no foreign key, like subject_id.
    project_id: Mapped[int | None] = mapped_column(Integer)


class AuditVerdict(Base):
    """What a full walk of the audit chain found (`audit verify`, the worker's periodic one),
    so that the audit page checks only the entries written since instead of the whole log."""

    __tablename__ = "audit_verdicts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    checked_at: Mapped[datetime] = mapped_column(DateTime)  # when the walk began (UTC)
    entries: Mapped[int] = mapped_column(Integer)  # entries walked
    through_id: Mapped[int | None] = mapped_column(Integer)  # the last entry walked (None: none)
    head_hash: Mapped[str] = mapped_column(String(64))  # its hash (GENESIS: none)
    checkpoints: Mapped[int] = mapped_column(Integer)  # signed checkpoints checked
    problem: Mapped[str | None] = mapped_column(Text)  # None: intact
    problem_entry_id: Mapped[int | None] = mapped_column(Integer)  # the entry it names, if one
