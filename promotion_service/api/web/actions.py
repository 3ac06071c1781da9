"""What people do on the pages: approve or reject, promote, roll back, hold, revoke, stop.

Each form posts a reason and a CSRF token, goes through the same use case as the API (the
same roles, less `ci`; the same project scope; the same audit entry), then sends the person
back to the page they came from with what happened.
"""

from __future__ import annotations

from flask import Blueprint, flash, redirect, request, url_for
from flask.typing import ResponseReturnValue

from ...db import get_session
from ...domain.actor import APPROVERS, MANAGERS
from ...errors import Invalid
from ...services import approvals, holds, images, promotion, rollback, stops
from .session import local_path, page_actor, people, require_page_roles

bp = Blueprint("web_actions", __name__)
MAX_REASON = 2000


@bp.post("/releases/<int:release_id>/decisions")
@require_page_roles(*people(*APPROVERS))
def decide(release_id: int) -> ResponseReturnValue:
    """Approve or reject the release for an environment, with a comment."""
    decision = request.form.get("decision", "")
    if decision not in ("approve", "reject"):
        raise Invalid.field("decision", "must be approve or reject", "form")
    approvals.decide(get_session(), page_actor(), release_id=release_id,
                     environment=_field("environment"), decision=decision, comment=_reason())
    flash(f"{'Approved' if decision == 'approve' else 'Rejected'} for "
          f"{request.form['environment']}.")
    return _back(_release_page(release_id))


@bp.post("/releases/<int:release_id>/promotions")
@require_page_roles(*people(*MANAGERS))
def promote(release_id: int) -> ResponseReturnValue:
    """Promote the release into an environment now (the gate decides)."""
    found, created = promotion.request(get_session(), page_actor(), release_id=release_id,
                                       environment=_field("environment"), reason=_reason())
    flash(f"Promotion {found.id} into {found.environment} "
          f"{'requested' if created else 'is already ' + found.state}.")
    return _back(_release_page(release_id))


@bp.post("/images/<int:image_id>/revoke")
@require_page_roles(*people(*MANAGERS))
def revoke(image_id: int) -> ResponseReturnValue:
    """Revoke an image for good: no release containing it goes anywhere."""
    result = images.revoke(get_session(), page_actor(), image_id, _reason())
    running = "; ".join(f"release {r['id']} in {', '.join(r['environments'])}"
                        for r in result["releases"] if r["environments"]) or "nowhere"
    flash(f"Image {image_id} revoked; still running: {running}.")
    return _back(url_for("web_views.overview_page"))


@bp.post("/projects/<int:project_id>/environments/<name>/rollback")
@require_page_roles(*people(*MANAGERS))
def roll_back(project_id: int, name: str) -> ResponseReturnValue:
    """Go back to the environment's last verified release (and hold it)."""
    found = rollback.rollback(get_session(), page_actor(), project_id, name, _reason())
    flash(f"Rollback of {name} requested (promotion {found.id}); {name} is held.")
    return _back(_environment_page(project_id, name))


@bp.post("/projects/<int:project_id>/environments/<name>/hold")
@require_page_roles(*people(*MANAGERS))
def put_hold(project_id: int, name: str) -> ResponseReturnValue:
    """Hold the environment: nothing is promoted into it automatically."""
    holds.put_hold(get_session(), page_actor(), project_id, name, _reason())
    flash(f"{name} is held.")
    return _back(_environment_page(project_id, name))


@bp.post("/projects/<int:project_id>/environments/<name>/hold/lift")
@require_page_roles(*people(*MANAGERS))
def lift_hold(project_id: int, name: str) -> ResponseReturnValue:
    """Lift the hold: automatic promotion resumes."""
    holds.lift_hold(get_session(), page_actor(), project_id, name, _reason())
    flash(f"The hold on {name} is lifted.")
    return _back(_environment_page(project_id, name))


@bp.post("/stops")
@require_page_roles(*people(*MANAGERS))
def stop() -> ResponseReturnValue:
    """Start an emergency stop of an environment name, in every project."""
    stops.stop(get_session(), page_actor(), [_field("environment")], _reason())
    flash(f"Emergency stop on {request.form['environment']}.")
    return _back(url_for("web_views.overview_page"))


@bp.post("/stops/<int:stop_id>/lift")
@require_page_roles(*people(*MANAGERS))
def lift_stop(stop_id: int) -> ResponseReturnValue:
    """End an emergency stop."""
    row = stops.lift(get_session(), page_actor(), stop_id, _reason())
    flash(f"The emergency stop on {row.environment} is lifted.")
    return _back(url_for("web_views.overview_page"))


def _release_page(release_id: int) -> str:
    return url_for("web_views.release_page", release_id=release_id)


def _environment_page(project_id: int, name: str) -> str:
    return url_for("web_views.environment_page", project_id=project_id, name=name)


def _field(name: str) -> str:
    value = request.form.get(name, "").strip()
    if not value:
        raise Invalid.field(name, "is required", "form")
    return value


def _reason() -> str:
    """Every action asks why: the reason goes into the audit entry."""
    reason = _field("reason")
    if len(reason) > MAX_REASON:
        raise Invalid.field("reason", f"is longer than {MAX_REASON} characters", "form")
    return reason


def _back(default: str) -> ResponseReturnValue:
    """303 to the page the form was on (a local path), else the default."""
    return redirect(local_path(request.form.get("next")) or default, 303)
