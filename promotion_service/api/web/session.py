"""Sign-in for people: a personal token exchanged for a session cookie, and who is signed in.

The cookie (Flask's signed session) holds the token's row id and the sign-in time, never the
token. Every request re-reads the token, so revoking it ends its sessions at once, and so does
signing out (every session opened with that token until then); a session
ends after PROMOTION_SESSION_HOURS whatever happens. The cookie is HttpOnly, SameSite=Strict,
and Secure whenever the request came over HTTPS (behind a proxy: PROMOTION_PROXY_HOPS).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from flask import (
    Blueprint,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.sessions import SecureCookieSessionInterface
from flask.typing import ResponseReturnValue

from ...db import get_session
from ...domain.actor import Actor
from ...errors import Forbidden, Unauthorized
from ...services import tokens
from ..auth import token_actor

F = TypeVar("F", bound=Callable[..., Any])
bp = Blueprint("web_session", __name__)
PAGE_ROLES_ATTRIBUTE = "_page_roles"  # which roles a page action lets through


class CookieSessions(SecureCookieSessionInterface):
    """Flask's signed cookie, marked Secure exactly when the request came over HTTPS."""

    def get_cookie_secure(self, app: Any) -> bool:
        return request.is_secure

    def open_session(self, app: Any, request: Any) -> Any:
        # API calls (the gate's on every deploy) carry no cookie: no signer to build for them,
        # nor a Cookie header to parse
        if app.secret_key and ("HTTP_COOKIE" not in request.environ
                               or not request.cookies.get(self.get_cookie_name(app))):
            return self.session_class()
        return super().open_session(app, request)


def signed_in() -> Actor | None:
    """The person signed in on this request, if any (their token must still be live)."""
    if "actor" in g:
        return g.actor
    g.actor = None
    token_id, since = session.get("token_id"), session.get("since", 0)
    if token_id is None:
        return None
    if time.time() - since > current_app.config["SESSION_HOURS"] * 3600:
        session.clear()
        return None
    opened_at = datetime.fromtimestamp(since, UTC).replace(tzinfo=None)
    row = tokens.of_session(get_session(), token_id, opened_at)
    if row is None:
        session.clear()
        return None
    g.actor = token_actor(row)
    return g.actor


def page_actor() -> Actor:
    """The signed-in person, or Unauthorized (the pages send them to sign in)."""
    actor = signed_in()
    if actor is None:
        raise Unauthorized("sign in first")
    return actor


def people(*roles: str) -> tuple[str, ...]:
    """The API's roles for an action, without `ci`: a pipeline's role reads the pages, never
    acts on them."""
    return tuple(role for role in roles if role != "ci")


def require_page_roles(*roles: str) -> Callable[[F], F]:
    """Let a page action through only for a signed-in person of these roles (the use case then
    checks the project scope and its own rules, as for the API)."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            actor = page_actor()
            if actor.role not in roles:
                raise Forbidden(f"role {actor.role!r} may not do this; it needs one of: "
                                f"{', '.join(roles)}")
            return view(*args, **kwargs)

        setattr(wrapper, PAGE_ROLES_ATTRIBUTE, tuple(roles))
        return wrapper  # type: ignore[return-value]

    return decorate


def may(*roles: str) -> bool:
    """Does the signed-in person hold one of these roles (to show an action's form)?"""
    actor = signed_in()
    return actor is not None and actor.role in roles


@bp.get("/sign-in")
def sign_in_form() -> ResponseReturnValue:
    """The sign-in form: a personal token, posted (never in a URL)."""
    return render_template("web/sign_in.html", next=local_path(request.args.get("next")))


@bp.post("/sign-in")
def sign_in() -> ResponseReturnValue:
    """Exchange a token for a session; a wrong one gets the form again, and a 401."""
    row = tokens.authenticate(get_session(), request.form.get("token", "").strip())
    if row is None:
        return render_template("web/sign_in.html", next=local_path(request.form.get("next")),
                               error="That token is not valid (or it was revoked)."), 401
    session.clear()  # a fresh session: nothing from before sign-in carries over
    session.permanent = True
    session["token_id"], session["since"] = row.id, time.time()
    flash(f"Signed in as {row.person} ({row.role}).")
    return redirect(local_path(request.form.get("next")) or url_for("web_views.overview_page"))


@bp.post("/sign-out")
def sign_out() -> ResponseReturnValue:
    """End the session, and every other one this token opened until now: the cookie is
    signed, not stored, so a copy of it would otherwise still open the pages (the form
    carries the CSRF token, like every other)."""
    actor = signed_in()
    if actor is not None and actor.token_id is not None:
        tokens.sign_out(get_session(), actor.token_id)
    session.clear()
    return redirect(url_for("web_session.sign_in_form"))


def local_path(target: str | None) -> str | None:
    """A path on this service to return to, or None (never another host).

    Browsers drop tabs and line breaks from a URL (`/<TAB>/evil.example` is `//evil.example`),
    so a target with any space or control character is refused too.
    """
    if (not target or not target.startswith("/") or target.startswith("//") or "\\" in target
            or any(c.isspace() or not c.isprintable() for c in target)):
        return None
    return target
