"""Sign-in for people: a token exchanged for a session cookie; CSRF on every form; headers."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from promotion_service import create_app, db
from promotion_service.db.models import AuditEntry
from promotion_service.domain.actor import Actor
from promotion_service.services import tokens as token_store
from tests.promotion_service.web.pages import Browser, csrf_of


def cookie_header(resp):
    [header] = [v for k, v in resp.headers.items() if k == "Set-Cookie"
                and v.startswith("docker_cd_session=")]
    return header


def audit_count(app):
    with db.session_for(app, write=False) as session:
        return session.scalar(select(func.count()).select_from(AuditEntry))


def test_pages_send_a_person_to_sign_in_first(client):
    resp = client.get("/ui/audit?actor=alice")
    assert resp.status_code == 302
    assert resp.headers["Location"].startswith("/ui/sign-in?next=/ui/audit")
    assert client.get("/").headers["Location"] == "/ui/"


def test_a_token_becomes_an_httponly_strict_session_cookie_that_never_holds_it(app, tokens):
    person = Browser(app.test_client())
    resp = person.sign_in(tokens["alice"])
    assert resp.status_code == 302 and resp.headers["Location"] == "/ui/"
    cookie = cookie_header(resp)
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "Secure" not in cookie  # plain HTTP: a Secure cookie would never come back
    assert tokens["alice"] not in cookie and tokens["alice"] not in resp.headers["Location"]
    page = person.get("/ui/")
    assert page.status_code == 200 and "alice" in page.text
    assert tokens["alice"] not in page.text


def test_over_https_the_cookie_is_secure(app, tokens):
    client = app.test_client()
    form = client.get("/ui/sign-in", base_url="https://localhost")
    resp = client.post("/ui/sign-in", base_url="https://localhost",
                       data={"token": tokens["alice"], "csrf_token": csrf_of(form.text)},
                       headers={"Referer": "https://localhost/ui/sign-in"})
    assert resp.status_code == 302, resp.text
    assert "Secure" in cookie_header(resp)


def test_a_wrong_token_gets_the_form_again_with_a_401(app):
    person = Browser(app.test_client())
    resp = person.sign_in("pst_1_not-a-token")
    assert resp.status_code == 401
    assert "not valid" in resp.text
    assert person.get("/ui/").status_code == 302


def test_sign_out_ends_the_session(browser):
    alice = browser("alice")
    assert alice.post("/ui/sign-out", {}).status_code == 302
    assert alice.get("/ui/").status_code == 302


def test_revoking_the_token_ends_its_sessions_at_once(app, browser):
    alice = browser("alice")
    with db.session_for(app) as session:
        token_store.revoke(session, Actor.system("tests"), "alice")
    assert alice.get("/ui/").headers["Location"].startswith("/ui/sign-in")


def test_a_session_expires_after_its_hours(app, browser):
    alice = browser("alice")
    with alice.client.session_transaction() as session:
        session["since"] -= int(app.config["SESSION_HOURS"] * 3600) + 1
    assert alice.get("/ui/").headers["Location"].startswith("/ui/sign-in")


def test_a_form_without_its_csrf_token_is_refused_and_changes_nothing(app, browser):
    rm = browser("rm")
    before = audit_count(app)
    resp = rm.post("/ui/stops", {"environment": "production", "reason": "drill"}, csrf=False)
    assert resp.status_code == 400 and "CSRF" in resp.text
    forged = rm.post("/ui/stops", {"environment": "production", "reason": "drill",
                                   "csrf_token": "forged"}, csrf=False)
    assert forged.status_code == 400
    assert audit_count(app) == before
    assert rm.post("/ui/stops", {"environment": "production", "reason": "drill"}).status_code \
        == 303
    assert audit_count(app) == before + 1


def test_the_api_needs_no_csrf_token(api):
    resp = api.post("/stops", json={"environments": ["qa"], "reason": "drill"}, as_="rm")
    assert resp.status_code == 201, resp.json


def test_pages_allow_only_the_services_own_origin_and_carry_no_inline_script(browser):
    rm = browser("rm")
    for path in ("/ui/", "/ui/audit", "/ui/sign-in", "/ui/projects/1/environments/test"):
        resp = rm.get(path)
        policy = resp.headers["Content-Security-Policy"]
        assert "default-src 'none'" in policy and "form-action 'self'" in policy
        assert "unsafe-inline" not in policy and "http" not in policy
        assert resp.headers["X-Frame-Options"] == "DENY"
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Cache-Control"] == "no-store"
        assert "<script" not in resp.text and not re.search(r"\sstyle=", resp.text)
        assert not re.search(r"(src|href)=\"(https?:)?//", resp.text), path
    css = rm.get("/static/pages.css")
    assert css.status_code == 200 and css.mimetype == "text/css"


def test_a_session_cookie_kept_from_before_sign_out_no_longer_opens_the_pages(app, tokens):
    person = Browser(app.test_client())
    person.sign_in(tokens["alice"])
    kept = person.client.get_cookie("docker_cd_session").value  # copied by someone, say
    assert person.post("/ui/sign-out", {}).status_code == 302
    thief = app.test_client()
    thief.set_cookie("docker_cd_session", kept)
    resp = thief.get("/ui/")
    assert resp.status_code == 302 and resp.headers["Location"].startswith("/ui/sign-in")
    assert person.sign_in(tokens["alice"]).status_code == 302  # signing in again works
    assert person.get("/ui/").status_code == 200


def test_sign_in_never_sends_a_person_to_another_host(app, tokens):
    client = app.test_client()
    for target in ("//evil.example", "/\\evil.example", "https://evil.example",
                   "/\t/evil.example", "/\n/evil.example", "/\r\n/evil.example",
                   " //evil.example"):
        form = client.get("/ui/sign-in", query_string={"next": target})
        assert form.status_code == 200 and "evil" not in form.text, repr(target)
        resp = client.post("/ui/sign-in", data={"token": tokens["alice"], "next": target,
                                                "csrf_token": csrf_of(form.text)})
        assert (resp.status_code, resp.headers["Location"]) == (302, "/ui/"), repr(target)
    form = client.get("/ui/sign-in", query_string={"next": "/ui/audit?actor=bob"})
    resp = client.post("/ui/sign-in", data={"token": tokens["alice"], "csrf_token":
                                            csrf_of(form.text), "next": "/ui/audit?actor=bob"})
    assert resp.headers["Location"] == "/ui/audit?actor=bob"


def test_behind_a_proxy_the_cookie_is_secure_only_when_the_proxy_is_trusted(app, tokens):
    def cookie_with(service):
        client = service.test_client()
        form = client.get("/ui/sign-in")
        return cookie_header(client.post(
            "/ui/sign-in", data={"token": tokens["alice"], "csrf_token": csrf_of(form.text)},
            headers={"X-Forwarded-Proto": "https",
                     "Referer": "https://localhost/ui/sign-in"}))

    assert "Secure" not in cookie_with(app)  # by default no proxy is trusted
    keys = ("DATABASE_URL", "POLICY_FILE", "TESTING", "SECRET_KEY")
    behind = create_app({k: app.config[k] for k in keys} | {"PROXY_HOPS": 1})
    try:
        assert "Secure" in cookie_with(behind)
    finally:
        db.engine_of(behind).dispose()
