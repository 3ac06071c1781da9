"""Bad input gets a JSON 4xx naming the field; never a 5xx."""

from __future__ import annotations

import pytest

from tests.promotion_service.helpers import PROJECT, digest, ref, register

WRITES = ["/images", "/scans", "/deployments", "/verifications", "/approvals", "/promotions",
          "/stops", "/projects", "/images/1/revoke", "/projects/1/environments/staging/rollback"]
MALFORMED = [b"{", b"[]", b'"text"', b"42", b"null", b'{"repository": null}', b"\xff\xfe",
             b'{"digest": ' + b"[" * 500 + b"]" * 500 + b"}",
             b'{"pipeline_id": 1e400}', b'{"pipeline_id": 99999999999999999999999999}']


def assert_error_shape(resp, code):
    assert resp.status_code == code, resp.json
    assert resp.is_json and {"code", "status", "message"} <= set(resp.json)
    assert resp.json["code"] == code


def test_unknown_fields_are_refused_by_name(api):
    resp = api.post("/images", json=ref(1) | {"project": PROJECT, "colour": "blue"})
    assert_error_shape(resp, 422)
    assert resp.json["errors"]["json"]["colour"] == ["Unknown field."]
    assert "colour" in resp.json["message"]


@pytest.mark.parametrize("bad", ["latest", "sha256:" + "A" * 64, "sha256:abc", "md5:" + "0" * 64,
                                 digest(1) + "0", ""])
def test_only_sha256_digests_are_accepted(api, bad):
    resp = api.post("/images", json={"repository": "r/app", "digest": bad, "project": PROJECT})
    assert_error_shape(resp, 422)
    assert "sha256:" in resp.json["errors"]["json"]["digest"][0]


def test_required_fields_are_named(api):
    resp = api.post("/deployments", json={"repository": "r/app"})
    assert_error_shape(resp, 422)
    assert set(resp.json["errors"]["json"]) == {"digest", "environment", "state"}


def test_gate_query_errors_are_keyed_by_field(api):
    resp = api.get("/gate", query_string={"repository": "r/app", "digest": "latest"})
    assert_error_shape(resp, 422)
    assert set(resp.json["errors"]["query"]) == {"digest", "environment"}


@pytest.mark.parametrize("path", WRITES)
def test_malformed_bodies_never_cause_a_server_error(api, path):
    register(api, 1)
    for body in MALFORMED:
        resp = api.post(path, data=body, content_type="application/json", as_="admin")
        assert 400 <= resp.status_code < 500, (body, resp.status_code, resp.data[:200])
        assert resp.is_json and resp.json["code"] == resp.status_code


def test_a_body_over_the_limit_is_refused(api):
    resp = api.post("/images", data=b'{"x": "' + b"a" * 70_000 + b'"}',
                    content_type="application/json")
    assert_error_shape(resp, 413)


def test_missing_bad_and_revoked_tokens_are_401(api, app, runner):
    assert_error_shape(api.get("/images", as_=None), 401)
    assert_error_shape(api.get("/images", headers={"Authorization": "Bearer pst_1_nope"},
                               as_=None), 401)
    assert_error_shape(api.get("/images", headers={"Authorization": "Basic eDp5"}, as_=None), 401)
    from promotion_service import db
    from promotion_service.domain.actor import Actor
    from promotion_service.services import tokens

    with db.session_for(app) as session:
        tokens.revoke(session, Actor.system("tests"), "alice")
    assert_error_shape(api.get("/images", as_="alice"), 401)
    assert api.get("/images", as_="bob").status_code == 200


def test_project_scoped_tokens_stay_in_their_project(api):
    resp = api.post("/images", json=ref(1) | {"project": PROJECT}, as_="ci-other")
    assert_error_shape(resp, 403)
    assert "other/app" in resp.json["message"]
    register(api, 1)
    assert_error_shape(api.get("/gate", query_string=ref(1, "test"), as_="ci-other"), 403)
    again = api.post("/images", json=ref(1) | {"project": PROJECT}, as_="ci-other")
    assert_error_shape(again, 403)


def test_a_project_scoped_admin_cannot_change_another_projects_policy(api, app):
    from promotion_service import db
    from promotion_service.domain.actor import Actor
    from promotion_service.services import tokens

    with db.session_for(app) as session:
        api.tokens["admin-other"] = tokens.create(session, Actor.system("tests"),
                                                  name="admin-other", role="admin",
                                                  project="other/app")[1]
    register(api, 1)
    path = "/projects/1/environments/production/policy"
    policy = api.get("/projects/1", as_="admin").json["environments"][2]["policy"]
    resp = api.put(path, json=policy | {"required_approvals": 3, "reason": "stricter"},
                   as_="admin-other")
    assert_error_shape(resp, 403)
    assert "other/app" in resp.json["message"]
    assert api.get("/projects/1").json["environments"][2]["policy"]["required_approvals"] == 2
    assert api.put(path, json=policy | {"required_approvals": 3, "reason": "stricter"},
                   as_="admin").status_code == 200


def test_a_digest_cannot_change_project(api):
    register(api, 1)
    resp = api.post("/images", json=ref(1) | {"project": "group/else"}, as_="rm")
    assert_error_shape(resp, 403)  # group/else owns no repository under group/app


def test_registering_twice_returns_the_same_image(api):
    first = api.post("/images", json=ref(1) | {"project": PROJECT})
    second = api.post("/images", json=ref(1) | {"project": PROJECT})
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json["id"] == second.json["id"]


def test_unknown_image_and_environment_are_404_with_a_hint(api):
    assert "register it" in api.get("/gate", query_string=ref(5, "test")).json["message"]
    register(api, 1)
    resp = api.get("/gate", query_string=ref(1, "qa"))
    assert_error_shape(resp, 404)
    assert "test, staging, production" in resp.json["message"]


def test_unknown_routes_and_methods_answer_json(api):
    assert_error_shape(api.get("/nope"), 404)
    assert_error_shape(api.call("DELETE", "/images"), 405)


def test_openapi_document_and_docs_are_served(client):
    doc = client.get("/api/v1/openapi.json").json
    assert {"/api/v1/gate", "/api/v1/images", "/api/v1/promotions"} <= set(doc["paths"])
    assert "bearer" in doc["components"]["securitySchemes"]
    assert client.get("/api/v1/docs").status_code == 200


def test_lists_are_paginated(api):
    for n in range(5):
        register(api, n)
    resp = api.get("/images", query_string={"page": 2, "page_size": 2})
    assert [i["digest"] for i in resp.json] == [digest(2), digest(1)]
    assert '"total": 5' in resp.headers["X-Pagination"]


def test_health_ready_and_metrics(client, api):
    register(api, 1)
    assert client.get("/health").json == {"status": "ok"}
    assert client.get("/ready").json["status"] == "ready"
    metrics = client.get("/metrics").get_data(as_text=True)
    assert "promotion_images 1.0" in metrics


def test_a_revoked_ci_token_stops_working_once_the_token_cache_expires(api, app):
    import time

    from promotion_service import db
    from promotion_service.domain.actor import Actor
    from promotion_service.services import tokens

    app.config["TOKEN_CACHE_SECONDS"] = 0.5
    assert api.get("/images", as_="ci-bot").status_code == 200  # now cached
    with db.session_for(app) as session:
        tokens.revoke(session, Actor.system("tests"), "ci-bot")
    time.sleep(0.6)
    assert_error_shape(api.get("/images", as_="ci-bot"), 401)


def test_commit_time_with_an_offset_is_stored_as_utc(api):
    resp = api.post("/images", json=ref(1) | {"project": PROJECT,
                                              "commit_time": "2026-11-26T12:00:00+02:00"})
    assert resp.json["commit_time"] == "2026-11-26T10:00:00+00:00"
    naive = api.post("/images", json=ref(2) | {"project": PROJECT,
                                               "commit_time": "2026-11-26T12:00:00"})
    assert naive.status_code == 422 and "commit_time" in naive.json["errors"]["json"]


@pytest.mark.parametrize("link", ["javascript:alert(document.domain)", "data:text/html,<b>x",
                                  "//evil.example/x", "ftp://host/report"])
def test_links_the_pages_show_must_be_http_urls(api, link):
    resp = api.post("/images", json=ref(1) | {"project": PROJECT, "pipeline_url": link})
    assert_error_shape(resp, 422)
    assert "pipeline_url" in resp.json["errors"]["json"]
    register(api, 2)
    resp = api.post("/scans", json=ref(2) | {"counts": {}, "report_url": link})
    assert_error_shape(resp, 422)
    assert "report_url" in resp.json["errors"]["json"]
    fine = "https://gitlab.example.com/group/app/-/pipelines/7"
    assert api.post("/images", json=ref(3) | {"project": PROJECT, "pipeline_url": fine}) \
        .status_code == 201
