"""The merge-request gate: may an MR whose head is this commit merge? And telling GitLab.

Answers go to GitLab through the outbox, in the same transaction as the answer kept here.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from ..db import write_transaction
from ..db.gitlab_models import MergeRequestCheck
from ..db.models import Project, utcnow
from ..domain.actor import Actor
from ..domain.gitlab_events import MergeRequestEvent, link_signature
from ..domain.policy import EnvironmentPolicy, GateFacts, MemberFacts, Reason, evaluate
from ..errors import NotFound
from ..services import lookups
from ..store import images, merge_request_checks, outbox, projects, releases, scans

COMMIT_STATUS_CHECK_ID = 0  # merge_request_checks.check_id for the commit-status form
SHA = re.compile(r"[0-9a-f]{40}")


@dataclass(frozen=True)
class MergeRequestVerdict:
    """The gate's answer for an MR head: passed, failed or pending, with the reasons."""

    status: str
    reasons: tuple[Reason, ...]
    release_id: int | None = None


PENDING_CODES = frozenset({"image_missing", "scan_missing"})


def merge_request_verdict(session: Session, project: Project | None, sha: str,
                          config: Any, now: datetime | None = None) -> MergeRequestVerdict:
    """Evaluate the MR gate: the release of the head commit is not revoked and each image it
    built passed its scan."""
    now = now or utcnow()
    if project is None:
        return MergeRequestVerdict("pending", (Reason(
            "image_missing", "no image is registered for this project yet",
            "let the merge request pipeline build, scan and register the image"),))
    release = releases.of_commit(session, project.id, sha)
    if release is None:
        return MergeRequestVerdict("pending", (Reason(
            "image_missing", f"no image is registered for commit {sha[:12]} yet",
            "let the merge request pipeline build, scan and register the image",
            {"sha": sha}),))
    policy = merge_request_policy(session, project, config)
    facts = GateFacts(environment="merge request", now=now,
                      members=tuple(_member(session, m) for m in release.members))
    decision = evaluate(policy, facts)
    if decision.allowed:
        return MergeRequestVerdict("passed", (), release.id)
    pending = all(r.code in PENDING_CODES for r in decision.reasons)
    return MergeRequestVerdict("pending" if pending else "failed", decision.reasons, release.id)


def _member(session: Session, member: Any) -> MemberFacts:
    image = images.get(session, member.image_id)
    scan = scans.latest(session, member.image_id)
    return MemberFacts(
        member.name, member.digest, member.built, image.revoked_at is not None,
        image.revoked_reason or "", scan.counts if scan is not None else None,
        tuple(scan.findings or ()) if scan is not None else ())


def merge_request_policy(session: Session, project: Project, config: Any) -> EnvironmentPolicy:
    """The MR's scan gate: PROMOTION_GITLAB_MR_MAX_SEVERITY, else the first environment's."""
    configured = (config.get("GITLAB_MR_MAX_SEVERITY") or "").strip().lower() or None
    if configured is None:
        first = projects.first_environment(session, project.id)
        configured = (first.policy or {}).get("max_severity") if first is not None else None
    return EnvironmentPolicy.from_dict({"max_severity": configured or "high"},
                                       "PROMOTION_GITLAB_MR_MAX_SEVERITY")


def check_merge_request(session: Session, event: MergeRequestEvent, config: Any, *,
                        check_id: int, always_answer: bool = True) -> MergeRequestCheck:
    """Evaluate an MR's gate, keep the answer, and queue it for GitLab."""
    with write_transaction(session):
        project = projects.by_gitlab_project(session, event.project_id, event.project_path)
        verdict = merge_request_verdict(session, project, event.sha, config)
        row = merge_request_checks.find_or_add(
            session, gitlab_project_id=event.project_id, mr_iid=event.mr_iid,
            check_id=check_id, project_path=event.project_path, sha=event.sha,
            status=verdict.status)
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
        outbox.enqueue(session, "commit_status", {
            "gitlab_project_id": project, "project_path": row.project_path, "sha": row.sha,
            "ref": row.ref, "state": state, "description": summary,
            "target_url": _check_url(config, row),
        })
    else:
        outbox.enqueue(session, "status_check_response", {
            "gitlab_project_id": project, "project_path": row.project_path,
            "mr_iid": row.mr_iid, "sha": row.sha, "check_id": row.check_id,
            "status": row.status,
        })
    row.answered = row.status


def _check_url(config: Any, row: MergeRequestCheck) -> str | None:
    """The commit status's link: the service's page of the gate's answer for the commit."""
    base = (config.get("PUBLIC_URL") or "").rstrip("/")
    secret = config.get("WEBHOOK_SECRET")
    if not base or not secret:
        return None
    key = link_signature(secret, row.gitlab_project_id, row.sha)
    return f"{base}/gate/commits/{row.gitlab_project_id}/{row.sha}?key={key}"


@dataclass(frozen=True)
class CommitPage:
    """What the commit status link shows: the gate's answer for the commit, now."""

    project: str
    sha: str
    verdict: MergeRequestVerdict
    image: str | None


def commit_page(session: Session, config: Any, gitlab_project_id: int, sha: str,
                key: str | None) -> CommitPage | None:
    """The page behind a commit status link; None unless the link's key is right."""
    secret = config.get("WEBHOOK_SECRET")
    if not secret or not key or not SHA.fullmatch(sha) or not hmac.compare_digest(
            link_signature(secret, gitlab_project_id, sha).encode(), key.encode()):
        return None
    project = projects.by_gitlab_project(session, gitlab_project_id)
    verdict = merge_request_verdict(session, project, sha, config)
    release = releases.get(session, verdict.release_id) if verdict.release_id else None
    return CommitPage(project.path if project else f"GitLab project {gitlab_project_id}", sha,
                      verdict, release.label if release else None)


def recheck_pending(session: Session, config: Any, limit: int = 200) -> int:
    """Re-evaluate MR checks still pending; answer GitLab when the image's state changed.

    It looks without the writers' lock first: most ticks change nothing.
    """
    if not _changed_checks(session, config, limit):
        return 0
    session.expire_all()  # what was read without the lock is read again under it
    changed = 0
    with write_transaction(session):
        for row, verdict in _changed_checks(session, config, limit):
            _set_verdict(row, verdict)
            _answer(session, row, force=False, config=config)
            changed += 1
    return changed


def _changed_checks(session: Session, config: Any,
                    limit: int) -> list[tuple[MergeRequestCheck, MergeRequestVerdict]]:
    """The pending checks whose verdict changed, each with its new verdict."""
    changed = []
    for row in merge_request_checks.pending(session, limit):
        project = projects.by_gitlab_project(session, row.gitlab_project_id, row.project_path)
        verdict = merge_request_verdict(session, project, row.sha, config)
        if verdict.status != row.status:
            changed.append((row, verdict))
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


def recent_checks(session: Session, actor: Actor, **filters: Any) -> list[dict[str, Any]]:
    """Merge-request checks, newest first (at most 100), those the token may see."""
    return [checks_payload(row) for row in merge_request_checks.recent(session, **filters)
            if actor.may_act_on(row.project_path)]


def check(session: Session, actor: Actor, row_id: int) -> dict[str, Any]:
    """One merge-request check with its reasons."""
    row = merge_request_checks.get(session, row_id)
    if row is None:
        raise NotFound(f"no merge-request check with id {row_id}")
    lookups.check_scope(actor, row.project_path)
    return checks_payload(row)


def commit_verdict(session: Session, actor: Actor, project_path: str, sha: str,
                   config: Any) -> MergeRequestVerdict:
    """May a merge request whose head is this commit merge? (`docker-cd gate` asks this.)"""
    lookups.check_scope(actor, project_path)
    return merge_request_verdict(session, projects.by_path(session, project_path), sha, config)
