"""The service's web pages for people, under /ui: sign-in, overview, images, environments,
the audit log, and the actions people take there.

Safety for every page: a session cookie (api/web/session.py), a CSRF token on every form
(Flask-WTF's CSRFProtect, checked on every POST here and nowhere in the bearer-token API),
a Content-Security-Policy allowing only the service's own origin (api/responses.py), and
errors answered as a page, with the same messages as the API's.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint, Flask, redirect, render_template, request, url_for
from flask_wtf.csrf import CSRFError, CSRFProtect

from ...errors import ServiceError, Unauthorized
from . import actions, session, views

PREFIX = "/ui"
csrf = CSRFProtect()


def init_app(app: Flask) -> None:
    """Register the pages, their session cookie and CSRF protection."""
    if not app.config.get("SECRET_KEY"):  # `serve` warns of it; the CLI's other commands need none
        app.config.update(SECRET_KEY=secrets.token_hex(32), SECRET_KEY_MADE_AT_START=True)
    app.config.update(
        SESSION_COOKIE_NAME="docker_cd_session", SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict", SESSION_REFRESH_EACH_REQUEST=False,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=app.config["SESSION_HOURS"]),
        WTF_CSRF_CHECK_DEFAULT=False,  # the API authenticates by bearer token: no cookies
        WTF_CSRF_TIME_LIMIT=int(app.config["SESSION_HOURS"] * 3600))
    app.session_interface = session.CookieSessions()
    csrf.init_app(app)
    app.jinja_env.filters.update(age=age, short=short)
    app.jinja_env.globals.update(me=session.signed_in, may=session.may, people=session.people)
    for module in MODULES:
        app.register_blueprint(module.bp, url_prefix=PREFIX)
    app.add_url_rule("/", "web_root", lambda: redirect(url_for("web_views.overview_page")))


def _protect(bp: Blueprint) -> None:
    bp.before_request(_check_csrf)
    bp.register_error_handler(Unauthorized, _sign_in_first)
    bp.register_error_handler(CSRFError, _csrf_refused)
    bp.register_error_handler(ServiceError, _refused)


def _check_csrf() -> None:
    if request.method == "POST":
        csrf.protect()


MODULES = (session, views, actions)


def _sign_in_first(exc: Unauthorized) -> Any:
    return redirect(url_for("web_session.sign_in_form", next=request.full_path.rstrip("?")))


def _csrf_refused(exc: CSRFError) -> Any:
    return render_template("web/error.html", status=400, message=(
        f"This form was refused: {exc.description} Open the page again and send the form "
        "from there."), reasons=[]), 400


def _refused(exc: ServiceError) -> Any:
    return render_template("web/error.html", status=exc.status, message=exc.message,
                           reasons=exc.reasons or []), exc.status


def age(moment: datetime | None) -> str:
    """How long ago, in the largest fitting unit ('12 min ago')."""
    if moment is None:
        return ""
    seconds = int((datetime.now(UTC).replace(tzinfo=None) - moment).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return "just now"


def short(digest: str | None) -> str:
    """A digest as people read it: sha256: and its first 12 hex digits."""
    if not digest:
        return ""
    algorithm, _, value = digest.partition(":")
    return f"{algorithm}:{value[:12]}"


for _module in MODULES:  # once per process: blueprints outlive the apps made from them
    _protect(_module.bp)
