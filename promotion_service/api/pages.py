"""Pages a person opens from GitLab: the link of the ``docker-cd/gate`` commit status.

Server-rendered HTML (Jinja escapes every value). The link carries a key signed by the
service, so whoever can see the commit status in GitLab can read the page, and nobody else.
"""

from __future__ import annotations

from flask import Blueprint, current_app, render_template, request
from flask.typing import ResponseReturnValue

from ..db import get_session
from ..gitlab import merge_request_gate

pages = Blueprint("pages", __name__)


@pages.get("/gate/commits/<int:gitlab_project_id>/<sha>")
def commit_gate(gitlab_project_id: int, sha: str) -> ResponseReturnValue:
    """The merge-request gate's answer for one commit, with every reason."""
    page = merge_request_gate.commit_page(get_session(), current_app.config, gitlab_project_id,
                                          sha, request.args.get("key"))
    headers = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    if page is None:
        return render_template("commit_gate.html", page=None), 404, headers
    return render_template("commit_gate.html", page=page), 200, headers
