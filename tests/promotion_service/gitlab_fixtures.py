"""Helpers for the GitLab-integration tests: a project with environments, images, promotions."""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from promotion_service.db.models import (
    Environment,
    Image,
    Outbox,
    Project,
    Promotion,
    Release,
    ReleaseMember,
    Scan,
)
from promotion_service.domain.releases import DEFAULT_MEMBER, Member, identity
from promotion_service.services.promotion import trigger_payload

SHA = "2695effb5807a22ff3d138d593fd856244e155e7"
GITLAB_TOKEN = "glpat-good"  # the access token the GitLab double accepts (conftest: double)
TRIGGER_TOKEN = "glptt-good"  # the trigger token of its project 42, group/app


def make_project(session: Session, *, path: str = "group/app", gitlab_id: int | None = 42,
                 policies: dict[str, dict[str, Any]] | None = None) -> Project:
    """A project with test -> staging -> production."""
    policies = policies or {"test": {}, "staging": {"auto_promote": True},
                            "production": {"required_approvals": 1}}
    project = Project(path=path, gitlab_id=gitlab_id)
    session.add(project)
    session.flush()
    for position, (name, policy) in enumerate(policies.items()):
        session.add(Environment(project_id=project.id, name=name, position=position,
                                policy=policy))
    session.flush()
    return project


def environment(session: Session, project: Project, name: str) -> Environment:
    return session.scalars(select(Environment).where(Environment.project_id == project.id,
                                                     Environment.name == name)).one()


def make_release(session: Session, project: Project, *, sha: str = SHA, n: int = 1,
                 scan: dict[str, int] | None = None,
                 names: tuple[str, ...] = (DEFAULT_MEMBER,)) -> Release:
    """Images of a commit (optionally with a scan summary each) and their release, one member
    per name (`app` alone: the one-image release of today)."""
    members = []
    for name in names:
        digest = "sha256:" + hashlib.sha256(f"{sha}{n}{name}".encode()).hexdigest()
        repository = "registry.example.com/group/app" + ("" if name == DEFAULT_MEMBER
                                                         else f"/{name}")
        image = Image(project_id=project.id, repository=repository, digest=digest,
                      commit_sha=sha, ref="main", registered_by="ci")
        session.add(image)
        session.flush()
        if scan is not None:
            session.add(Scan(image_id=image.id, scanner="trivy", counts=scan,
                             findings=[{"id": "CVE-2026-0001", "severity": "critical"}]
                             if scan.get("critical") else [], actor="ci"))
        members.append((Member(name, repository, digest), image))
    release = Release(project_id=project.id, digest=identity([m for m, _ in members], None),
                      member_count=len(members), commit_sha=sha, ref="main",
                      registered_by="ci", tags=[])
    session.add(release)
    session.flush()
    for member, image in members:
        session.add(ReleaseMember(release_id=release.id, name=member.name, image_id=image.id,
                                  repository=member.repository, digest=member.digest,
                                  built=True))
    session.flush()
    session.expire(release, ["members"])
    return release


def make_promotion(session: Session, project: Project, release: Release,
                   env_name: str = "staging") -> Promotion:
    """A promotion and its outbox row, in one transaction, as the service writes them."""
    env = environment(session, project, env_name)
    promotion = Promotion(release_id=release.id, environment_id=env.id, kind="auto",
                          state="requested", requested_by="test")
    session.add(promotion)
    session.flush()
    session.add(Outbox(promotion_id=promotion.id, kind="trigger_pipeline",
                       payload=trigger_payload(project, env, release, promotion)))
    session.flush()
    return promotion


def database_app(database_url: str, **config: Any):
    """A bare Flask app on the service's (migrated) database, for dispatcher tests."""
    from flask import Flask

    from promotion_service import db

    app = Flask("gitlab-tests")
    app.config.update(DATABASE_URL=database_url, **config)
    db.init_app(app)
    return app

