"""The pages people read: the overview matrix, an image, an environment, the audit log.

Server-rendered (Jinja escapes every value); no script. Reads go through the same use cases
and project scope as the API's GETs.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask.typing import ResponseReturnValue

from ...db import get_session
from ...domain.actor import APPROVERS, MANAGERS
from ...services import audit, dora, lookups, overview, projects
from .. import pagination
from . import charts
from .session import page_actor

bp = Blueprint("web_views", __name__)
AUDIT_FILTERS = ("project", "environment", "actor", "action", "since", "until")
AUDIT_PAGE = 100
EXPORTED = ("id", "at", "actor", "role", "action", "subject_type", "subject_id", "before",
            "after", "request_id", "source_ip", "prev_hash", "hash")


@bp.get("/")
def overview_page() -> ResponseReturnValue:
    """Projects x environments: what runs, its state, what waits and why."""
    actor = page_actor()
    session = get_session()
    project, environment = request.args.get("project", ""), request.args.get("environment", "")
    matrix = overview.matrix(session, actor, project=project or None,
                             environment=environment or None, page=_page())
    return render_template("web/overview.html", matrix=matrix, project=project,
                           environment=environment, environments=matrix.environments,
                           stops=matrix.stops, MANAGERS=MANAGERS)


@bp.get("/releases/<int:release_id>")
def release_page(release_id: int) -> ResponseReturnValue:
    """One release: its members (scans), commit and pipeline, its path, approvals, gate
    reasons, audit."""
    page = overview.release_page(get_session(), page_actor(), release_id)
    return render_template("web/release.html", page=page, APPROVERS=APPROVERS,
                           MANAGERS=MANAGERS)


@bp.get("/images/<int:image_id>")
def image_page(image_id: int) -> ResponseReturnValue:
    """An image's one-member release (an image of several releases: 404 naming them)."""
    session, actor = get_session(), page_actor()
    image = lookups.image_by_id(session, image_id)
    lookups.check_image_scope(session, actor, image)
    release = lookups.release_of_image(session, image)
    return redirect(url_for("web_views.release_page", release_id=release.id))


@bp.get("/projects/<int:project_id>/environments/<name>")
def environment_page(project_id: int, name: str) -> ResponseReturnValue:
    """One environment of a project: its hold, its rollouts, rollback and hold forms."""
    session, actor = get_session(), page_actor()
    project = projects.get(session, actor, project_id)
    env = next((e for e in project.environments if e.name == name), None)
    history = projects.releases_of(session, actor, project_id, name).page(0, 50)
    return render_template("web/environment.html", project=project, env=env, history=history,
                           MANAGERS=MANAGERS)


DORA_WINDOWS = (7, 30, 90)


@bp.get("/dora")
def dora_page() -> ResponseReturnValue:
    """DORA's four keys per project and environment over a window, with a chart of
    deployments per day."""
    session = get_session()
    days = request.args.get("days", "30")
    days = int(days) if days.isdigit() and int(days) in DORA_WINDOWS else 30
    project, environment = request.args.get("project", ""), request.args.get("environment", "")
    report = dora.report(session, page_actor(), project=project or None,
                         environment=environment or None, days=days)
    rows = []
    for item in report:
        dates = [(item.start + timedelta(days=i)).date().isoformat()
                 for i in range(len(item.keys.per_day))]
        titles = [f"{d}: {n} deployment{'' if n == 1 else 's'}"
                  for d, n in zip(dates, item.keys.per_day, strict=True)]
        rows.append((item, charts.bars(item.keys.per_day, titles)))
    return render_template("web/dora.html", rows=rows, days=days, windows=DORA_WINDOWS,
                           project=project, environment=environment,
                           environments=overview.environment_names(session),
                           duration=charts.duration, chart=charts)


@bp.get("/audit")
def audit_page() -> ResponseReturnValue:
    """The audit log, filtered, with the chain's verification state and export links.

    Its cost does not grow with the log: the chain's state is the latest full verdict
    stored plus a walk of the entries since (services.audit.chain_state), the count stops
    at COUNT_LIMIT + 1 (as the API's offset totals do), and whether there is an older page
    comes from reading one row more than the page."""
    session = get_session()
    entries = _audit_listing()
    page = _page()
    state = audit.chain_state(session, audit.anchor_from_config(current_app.config))
    filters = {key: request.args.get(key, "") for key in AUDIT_FILTERS}
    first, limit = (page - 1) * AUDIT_PAGE, pagination.COUNT_LIMIT
    rows = [] if first > pagination.MAX_OFFSET else entries.page(first, AUDIT_PAGE + 1)
    return render_template("web/audit.html", entries=rows[:AUDIT_PAGE],
                           total=entries.count(at_most=limit + 1), limit=limit,
                           has_older=len(rows) > AUDIT_PAGE, page=page, state=state,
                           filters=filters, query={k: v for k, v in filters.items() if v})


@bp.get("/audit.jsonl")
def audit_jsonl() -> Response:
    """The filtered audit log as JSON lines (one entry a line, oldest last)."""
    rows = _export_rows()
    lines = (json.dumps(row, sort_keys=True) + "\n" for row in rows)
    return _download(lines, "audit.jsonl", "application/x-ndjson")


@bp.get("/audit.csv")
def audit_csv() -> Response:
    """The filtered audit log as CSV (before and after as JSON text; no cell starts a
    formula)."""
    rows = _export_rows()

    def lines() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, EXPORTED)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(v) for k, v in row.items()})
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
        yield buffer.getvalue()

    return _download(lines(), "audit.csv", "text/csv")


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    """A CSV cell: JSON for before/after; text a spreadsheet would run as a formula (a request
    id, a name, as a client sent it) is kept as text by a leading quote."""
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _audit_listing() -> Any:
    args = {key: request.args.get(key, "").strip() or None for key in AUDIT_FILTERS}
    who = args.pop("actor")
    return audit.search(get_session(), page_actor(), who=who, **args)


def _export_rows() -> Iterator[dict[str, Any]]:
    entries = _audit_listing()  # sign-in and scope are checked before the stream starts
    return ({key: getattr(entry, key) for key in EXPORTED}
            for entry in audit.exported(get_session(), entries))


def _download(body: Iterator[str], name: str, mimetype: str) -> Response:
    response = Response(stream_with_context(body), mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    response.headers["Cache-Control"] = "no-store"
    return response


def _page() -> int:
    try:
        return max(1, int(request.args.get("page", "1")))
    except ValueError:
        return 1
