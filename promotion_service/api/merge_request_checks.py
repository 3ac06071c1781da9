"""/api/v1/merge-request-checks: the merge-request gate and what it told GitLab, with reasons."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy import select

from .. import merge_request_gate
from ..auth import current_actor, require_token
from ..db import get_session
from ..errors import NotFound
from ..gitlab_models import MergeRequestCheck
from ..models import Project
from ..store.projects import check_scope
from .schemas import PROJECT, SHA, Filters, ReasonOut

blp = Blueprint("merge-request-checks", __name__,
                description="Merge-request gates: external status checks and docker-cd gate")


class MergeRequestCheckFilters(Filters):
    """Filters for listing merge-request checks."""

    project = fields.Str(validate=PROJECT)
    mr_iid = fields.Int(validate=validate.Range(min=1))
    sha = fields.Str(validate=SHA)


class MergeRequestCheckOut(Schema):
    """What the gate answered for a merge request's head commit."""

    id = fields.Int()
    gitlab_project_id = fields.Int()
    project = fields.Str()
    mr_iid = fields.Int()
    check_id = fields.Int(allow_none=True, metadata={
        "description": "the external status check; null when answered as a commit status"})
    sha = fields.Str()
    ref = fields.Str(allow_none=True)
    url = fields.Str(allow_none=True)
    status = fields.Str(metadata={"description": "passed, failed or pending"})
    reasons = fields.List(fields.Nested(ReasonOut))
    answered = fields.Str(allow_none=True, metadata={"description": "last status sent to GitLab"})
    updated_at = fields.Str(allow_none=True)


class MergeRequestGateQuery(Filters):
    """Which commit of which project."""

    project = fields.Str(required=True, validate=PROJECT)
    sha = fields.Str(required=True, validate=validate.Regexp(
        r"^[0-9a-f]{40}$", error="must be a full 40-hex commit SHA"))


class MergeRequestGateOut(Schema):
    """The merge-request gate's answer for a commit."""

    allowed = fields.Bool()
    status = fields.Str(metadata={"description": "passed, failed or pending (not ready yet)"})
    reasons = fields.List(fields.Nested(ReasonOut))
    image_id = fields.Int(allow_none=True)


@blp.route("", methods=["GET"])
@require_token
@blp.arguments(MergeRequestCheckFilters(), location="query")
@blp.response(200, MergeRequestCheckOut(many=True))
def list_checks(query: dict[str, Any]) -> Any:
    """Merge-request checks, newest first (at most 100)."""
    stmt = select(MergeRequestCheck).order_by(MergeRequestCheck.updated_at.desc()).limit(100)
    if "project" in query:
        stmt = stmt.where(MergeRequestCheck.project_path == query["project"])
    if "mr_iid" in query:
        stmt = stmt.where(MergeRequestCheck.mr_iid == query["mr_iid"])
    if "sha" in query:
        stmt = stmt.where(MergeRequestCheck.sha == query["sha"])
    actor = current_actor()
    rows = [r for r in get_session().scalars(stmt) if actor.may_act_on(r.project_path)]
    return [merge_request_gate.checks_payload(r) for r in rows]


@blp.route("/<int:check_row_id>", methods=["GET"])
@require_token
@blp.response(200, MergeRequestCheckOut)
def get_check(check_row_id: int) -> Any:
    """One merge-request check with its reasons."""
    row = get_session().get(MergeRequestCheck, check_row_id)
    if row is None:
        raise NotFound(f"no merge-request check with id {check_row_id}")
    check_scope(current_actor(), row.project_path)
    return merge_request_gate.checks_payload(row)


@blp.route("/gate", methods=["GET"])
@require_token
@blp.arguments(MergeRequestGateQuery(), location="query")
@blp.response(200, MergeRequestGateOut)
def gate(query: dict[str, Any]) -> Any:
    """May a merge request whose head is this commit merge? (`docker-cd gate` asks this.)"""
    check_scope(current_actor(), query["project"])
    session = get_session()
    project = session.scalar(select(Project).where(Project.path == query["project"]))
    verdict = merge_request_gate.merge_request_verdict(session, project, query["sha"],
                                                current_app.config)
    return {"allowed": verdict.status == "passed", "status": verdict.status,
            "reasons": [r.to_dict() for r in verdict.reasons], "image_id": verdict.image_id}
