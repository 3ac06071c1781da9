"""CI jobs authenticate with GitLab's ID tokens: RS256, checked against GitLab's JWKS and the
audience; what a job says about its pipeline comes from the signed claims."""

from __future__ import annotations

import pytest

from docker_cd_local.gitlab_oidc import IdTokenIssuer
from tests.promotion_service.conftest import AUDIENCE
from tests.promotion_service.helpers import codes, digest, promoted_to_staging, ref, register

SHA = "ab" * 20


def test_a_job_registers_with_its_id_token_and_the_claims_say_who_ran_it(api, id_token):
    token = id_token(user_login="Alice", pipeline_id=777, ref="main", sha=SHA)
    resp = api.post("/images", json=ref(1) | {"project": "group/app"}, as_=token)
    assert resp.status_code == 201, resp.json
    image = resp.json
    assert (image["triggered_by"], image["pipeline_id"], image["commit_sha"], image["ref"]) == (
        "alice", 777, SHA, "main")
    assert (image["registered_by"], image["registered_via"]) == ("alice", "id_token")
    [entry] = api.get("/audit", query_string={"action": "image.registered"}).json
    assert (entry["actor"], entry["role"]) == ("alice", "ci")


@pytest.mark.parametrize("field, value", [
    ("triggered_by", "bob"), ("pipeline_id", 1), ("commit_sha", "cd" * 20), ("ref", "evil")])
def test_the_body_cannot_contradict_what_gitlab_signed(api, id_token, field, value):
    token = id_token(user_login="alice", pipeline_id=777)
    resp = api.post("/images", json=ref(1) | {"project": "group/app", field: value}, as_=token)
    assert resp.status_code == 422
    assert list(resp.json["errors"]["json"]) == [field]
    assert "ID token" in resp.json["message"]


@pytest.mark.parametrize("problem, claims, says", [
    ("another audience", {"audience": "https://other.example.com"}, "audience"),
    ("expired", {"ttl": -3600}, "expired"),
    ("another issuer", {"iss": "https://gitlab.evil.example"}, "issuer"),
    ("no pipeline", {"without": ("pipeline_id",)}, "pipeline_id"),
])
def test_a_token_gitlab_did_not_sign_for_this_service_is_401(api, id_token, problem, claims,
                                                              says):
    resp = api.post("/images", json=ref(1) | {"project": "group/app"}, as_=id_token(**claims))
    assert resp.status_code == 401, problem
    assert says in resp.json["message"]


def test_a_token_signed_with_another_key_is_401(api, oidc):
    forger = IdTokenIssuer()
    token = forger.mint(oidc.url, audience=AUDIENCE, project_path="group/app", pipeline_id=1,
                        user_login="alice", key=forger._key)
    resp = api.post("/images", json=ref(1) | {"project": "group/app"}, as_=token)
    assert resp.status_code == 401
    assert "ID token" in resp.json["message"]


def test_a_job_acts_only_on_the_project_its_token_names(api, id_token):
    token = id_token(project_path="other/app")
    other = {"repository": "registry.example.com/group/app", "digest": digest(1)}
    resp = api.post("/images", json=other | {"project": "group/app"}, as_=token)
    assert resp.status_code == 403 and "other/app" in resp.json["message"]


def test_an_id_token_cannot_create_a_project_nobody_set_up(api, id_token):
    token = id_token(project_path="stranger/app")
    resp = api.post("/images", json={"repository": "registry.example.com/stranger/app",
                                     "digest": digest(1), "project": "stranger/app"}, as_=token)
    assert resp.status_code == 403
    assert "not known to the promotion service" in resp.json["message"]


def test_a_test_job_cannot_report_into_production(api, app, id_token):
    register(api, 1)
    token = id_token(environment="test")
    resp = api.post("/deployments", json=ref(1, "production") | {"state": "succeeded"},
                    as_=token)
    assert resp.status_code == 403
    assert "environment test" in resp.json["message"]
    assert api.post("/deployments", json=ref(1, "test") | {"state": "succeeded"},
                    as_=token).status_code == 201


def test_without_oidc_settings_id_tokens_are_refused_by_name(api, app, id_token):
    app.extensions["promotion_id_tokens"] = None
    resp = api.get("/images", as_=id_token())
    assert resp.status_code == 401 and "PROMOTION_OIDC_ISSUER" in resp.json["message"]


def test_the_claiming_pipeline_is_the_tokens(api, app, id_token):
    promotion_id = promoted_to_staging(api, app, 1)
    token = id_token(pipeline_id=4242, environment="staging")
    mismatch = api.post("/claims", json=ref(1, "staging") | {
        "promotion_id": promotion_id, "pipeline_id": 1}, as_=token)
    assert mismatch.status_code == 422 and "pipeline_id" in mismatch.json["errors"]["json"]
    claimed = api.post("/claims", json=ref(1, "staging") | {"promotion_id": promotion_id},
                       as_=token)
    assert claimed.status_code == 201, claimed.json
    assert api.get(f"/promotions/{promotion_id}").json["pipeline_id"] == 4242
    other = api.post("/claims", json=ref(1, "staging") | {"promotion_id": promotion_id},
                     as_=id_token(pipeline_id=4243, environment="staging"))
    assert other.status_code == 409 and codes(other) == ["promotion_claimed"]


def test_only_the_claiming_pipeline_reports_its_deployment(api, app, id_token):
    promotion_id = promoted_to_staging(api, app, 1)
    mine = id_token(pipeline_id=4242, environment="staging")
    other = id_token(pipeline_id=4243, environment="staging")
    api.post("/claims", json=ref(1, "staging") | {"promotion_id": promotion_id}, as_=mine)
    started = ref(1, "staging") | {"state": "started"}
    refused = api.post("/deployments", json=started, as_=other)
    assert refused.status_code == 409 and "pipeline 4242" in refused.json["message"]
    deployment = api.post("/deployments", json=started, as_=mine)
    assert deployment.status_code == 201
    path = f"/deployments/{deployment.json['id']}"
    assert api.patch(path, json={"state": "failed"}, as_=other).status_code == 409
    assert api.patch(path, json={"state": "succeeded"}, as_=mine).status_code == 200
