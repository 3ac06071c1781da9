"""What each kind of outbox row does: the GitLab call (outside any transaction), and what
is recorded once it answered."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from ..db.models import Outbox, Promotion
from ..domain.actor import Actor
from ..domain.states import PromotionState
from ..errors import Conflict
from ..gitlab.client import GitLabClient
from ..gitlab.errors import GitLabError
from ..services.promotion import mark_triggered_many
from ..store import gitlab_deployments, promotions
from .settings import DispatcherSettings

log = logging.getLogger(__name__)

ACTOR = Actor.system("dispatcher")


@dataclass(frozen=True)
class Handler:
    """How one kind of outbox row is sent: the GitLab call runs outside any transaction.

    ``record`` records what GitLab answered for rows of the kind that landed together (in
    one transaction), returning for each what happened beside (None: nothing). ``settle``
    reads a refusal that leaves nothing to send (GitLab already holds what was asked, or the
    request went stale): it returns the outcome and the row counts as sent; None lets the
    refusal fail (or retry) the row. ``in_any_order``: rows of this kind may go
    out together, in any order (each trigger starts its own promotion's pipeline); other
    kinds (a commit's statuses, one after the other) go out one at a time, in order.
    """

    send: Callable[[GitLabClient, DispatcherSettings, dict[str, Any]], Any]
    skip: Callable[[Session, Outbox], str | None] = lambda session, row: None
    record: Callable[[Session, list[tuple[Outbox, Any]]], list[str | None]] = (
        lambda session, answers: [None] * len(answers))
    settle: Callable[[Session, Outbox, GitLabError], str | None] = lambda s, row, error: None
    in_any_order: bool = False


def _project(payload: dict[str, Any]) -> int | str:
    return payload.get("gitlab_project_id") or payload["project_path"]


def _trigger_skip(session: Session, row: Outbox) -> str | None:
    promotion = promotions.get_row(session, row.promotion_id) if row.promotion_id else None
    if promotion is None:
        return None
    if promotion.pipeline_id is not None:
        return f"pipeline {promotion.pipeline_id} already runs this promotion; not triggered again"
    if PromotionState(promotion.state).is_terminal:
        return f"promotion is {promotion.state}; not triggered"
    return None


def _trigger_send(gitlab: GitLabClient, settings: DispatcherSettings,
                  payload: dict[str, Any]) -> Any:
    return gitlab.trigger_pipeline(
        _project(payload),
        payload.get("ref") or settings.trigger_ref,
        payload.get("variables") or {},
        trigger_token=settings.trigger_token,
    )


def _trigger_record(session: Session, answers: list[tuple[Outbox, Any]]) -> list[str | None]:
    """Record each pipeline on its promotion, unless another pipeline claimed it first."""
    pipelines = [(row.promotion_id, pipeline.id, pipeline.web_url)
                 for row, pipeline in answers if row.promotion_id is not None]
    try:
        recorded = mark_triggered_many(session, pipelines, ACTOR) if pipelines else {}
    except Conflict as e:
        if len(pipelines) > 1:
            raise  # the dispatcher records them one at a time then, each with its outcome
        promotion_id, pipeline_id, _ = pipelines[0]
        log.warning("promotion %s: pipeline %s not recorded: %s", promotion_id, pipeline_id, e)
        return [None if row.promotion_id is None
                else f"pipeline {pipeline_id} created but not recorded: {e}"
                for row, _ in answers]
    return [None if row.promotion_id is None
            else _claimed_by_another(row.promotion_id, pipeline.id, recorded[row.promotion_id])
            for row, pipeline in answers]


def _claimed_by_another(promotion_id: int, pipeline_id: int, promotion: Promotion) -> str | None:
    """The gate (or a pipeline hook) let another pipeline claim it: that one deploys."""
    if promotion.pipeline_id == pipeline_id:
        return None
    log.warning("promotion %s: pipeline %s created, but pipeline %s claimed it",
                promotion_id, pipeline_id, promotion.pipeline_id)
    return (f"pipeline {pipeline_id} created, but pipeline {promotion.pipeline_id} "
            "already claimed the promotion; its gate call will be refused")


def _play_send(gitlab: GitLabClient, _: DispatcherSettings, payload: dict[str, Any]) -> Any:
    """Play the job if it still waits to be played: GitLab runs a finished manual job again
    when asked to play it, so a retried play (its first answer lost) must not reach it."""
    project, job_id = _project(payload), int(payload["job_id"])
    status = gitlab.job_status(project, job_id)
    if status != "manual":
        return f"job {job_id} is {status}, not manual: not played (again)"
    return gitlab.play_job(project, job_id)


def _already_pending(session: Session, row: Outbox, error: GitLabError) -> str | None:
    """GitLab refuses a second ``pending`` commit status (no transition from pending to
    pending: app/models/commit_status.rb); the commit already shows what was meant."""
    if row.payload.get("state") == "pending" and "via :enqueue from :pending" in error.message:
        return "GitLab already shows the gate pending on this commit"
    return None


def _stale_head(session: Session, row: Outbox, error: GitLabError) -> str | None:
    """409: the merge request's head moved on; GitLab sends the new head to the check."""
    if error.status == 409 and "does not match HEAD" in error.message:
        return f"not answered: {error.message} (GitLab asks again for the new head)"
    return None


def _no_longer_waiting(session: Session, row: Outbox, error: GitLabError) -> str | None:
    """GitLab got its approvals (or the deployment moved on): nothing is left to approve."""
    if "not waiting for approvals" in error.message:
        return f"not sent: {error.message}"
    return None


def _unplayable(session: Session, row: Outbox, error: GitLabError) -> str | None:
    """``400 Unplayable Job``: GitLab still waits for approval (or the job is not manual).
    The deployment is marked unplayed, so the next sync plays it once GitLab stops waiting."""
    if error.status != 400 or "Unplayable Job" not in error.message:
        return None
    payload = row.payload
    if payload.get("deployment_id") and payload.get("gitlab_project_id"):
        gitlab_deployments.unplayed(session, int(payload["gitlab_project_id"]),
                                    int(payload["deployment_id"]))
    return f"not played: GitLab answered {error.message}; played when GitLab no longer waits"


HANDLERS: dict[str, Handler] = {  # one per store.outbox.KINDS
    "trigger_pipeline": Handler(send=_trigger_send, skip=_trigger_skip, record=_trigger_record,
                                in_any_order=True),
    "status_check_response": Handler(send=lambda gitlab, _, p: gitlab.answer_status_check(
        _project(p), int(p["mr_iid"]), sha=p["sha"], check_id=int(p["check_id"]),
        status=p["status"]), settle=_stale_head),
    "commit_status": Handler(send=lambda gitlab, _, p: gitlab.set_commit_status(
        _project(p), p["sha"], p["state"], ref=p.get("ref"),
        description=p.get("description") or "", target_url=p.get("target_url")),
        settle=_already_pending),
    "play_job": Handler(send=_play_send, settle=_unplayable,
                        record=lambda session, answers: [
                            result if isinstance(result, str) else None
                            for _, result in answers]),
    "deployment_approval": Handler(send=lambda gitlab, _, p: gitlab.approve_deployment(
        _project(p), int(p["deployment_id"]), status=p.get("status", "approved"),
        comment=p.get("comment"), represented_as=p.get("represented_as")),
        settle=_no_longer_waiting),
}
