"""The rendered template's hash is part of what is approved: a changed template needs approving
again before production deploys it."""

from __future__ import annotations

from tests.promotion_service.helpers import deploy, ref, register, verify

FIRST, CHANGED = "sha256:" + "1" * 64, "sha256:" + "2" * 64


def approve(api, n: int, who: str, **extra):
    resp = api.post("/approvals", json=ref(n, "production") | extra, as_=who)
    assert resp.status_code in (200, 201), resp.json
    return resp.json


def report(api, n: int, template_hash: str, state: str = "started"):
    return api.post("/deployments", json=ref(n, "production") | {
        "state": state, "template_hash": template_hash})


def approved_image(api) -> int:
    register(api, 1)
    for environment in ("test", "staging"):
        deploy(api, 1, environment)
        verify(api, 1, environment)
    approve(api, 1, "alice")
    approve(api, 1, "bob")
    return 1


def test_approvals_are_for_the_template_they_let_deploy(api):
    n = approved_image(api)
    started = report(api, n, FIRST)
    assert started.status_code == 201 and started.json["template_hash"] == FIRST
    assert api.patch(f"/deployments/{started.json['id']}",
                     json={"state": "succeeded"}).status_code == 200
    standing = api.get("/approvals", query_string=ref(n, "production")).json
    assert {a["template_hash"] for a in standing} == {FIRST}
    assert report(api, n, FIRST).status_code == 201  # the same template again: fine
    refused = report(api, n, CHANGED)
    assert refused.status_code == 409
    assert "a changed template needs approving again" in refused.json["message"]
    assert refused.json["reasons"][0]["code"] == "template_changed"
    approve(api, n, "alice", template_hash=CHANGED)
    assert report(api, n, CHANGED).status_code == 409  # one of two approvals is for it
    approve(api, n, "bob")  # again, without naming a template: for the next one deployed
    assert report(api, n, CHANGED).status_code == 201


def test_an_approval_naming_a_template_is_only_for_it(api):
    n = approved_image(api)
    approve(api, n, "alice", template_hash=FIRST)
    approve(api, n, "bob", template_hash=FIRST)
    assert report(api, n, CHANGED).status_code == 409
    assert report(api, n, FIRST).status_code == 201


def test_environments_without_approvals_take_any_template(api):
    register(api, 1)
    for template_hash in (FIRST, CHANGED):
        resp = api.post("/deployments", json=ref(1, "test") | {
            "state": "succeeded", "template_hash": template_hash})
        assert resp.status_code == 201
