"""/api/v1/merge-request-checks: the merge-request gate and what it told GitLab, with reasons."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask_smorest import Blueprint

from ..db import get_session
from ..gitlab import merge_request_gate
from .auth import current_actor, require_token
from .schemas.merge_request_checks import (
    MergeRequestCheckFilters,
    MergeRequestCheckOut,
    MergeRequestGateOut,
    MergeRequestGateQuery,
)

blp = Blueprint("merge-request-checks", __name__,
                description="Merge-request gates: external status checks and docker-cd gate")


@blp.route("", methods=["GET"])
@require_token
@blp.arguments(MergeRequestCheckFilters(), location="query")
@blp.response(200, MergeRequestCheckOut(many=True))
def list_checks(query: dict[str, Any]) -> Any:
    """Merge-request checks, newest first (at most 100)."""
    return merge_request_gate.recent_checks(get_session(), current_actor(), **query)


@blp.route("/<int:check_row_id>", methods=["GET"])
@require_token
@blp.response(200, MergeRequestCheckOut)
def get_check(check_row_id: int) -> Any:
    """One merge-request check with its reasons."""
    return merge_request_gate.check(get_session(), current_actor(), check_row_id)


@blp.route("/gate", methods=["GET"])
@require_token
@blp.arguments(MergeRequestGateQuery(), location="query")
@blp.response(200, MergeRequestGateOut)
def gate(query: dict[str, Any]) -> Any:
    """May a merge request whose head is this commit merge? (`docker-cd gate` asks this.)"""
    verdict = merge_request_gate.commit_verdict(get_session(), current_actor(), query["project"],
                                                query["sha"], current_app.config)
    return {"allowed": verdict.status == "passed", "status": verdict.status,
            "reasons": [r.to_dict() for r in verdict.reasons], "release_id": verdict.release_id}
