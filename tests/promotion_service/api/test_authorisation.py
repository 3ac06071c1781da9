"""Who did it: the bypasses an insider would try (issue 12), each refused.

Four-eyes and N-of-M count persons (a token belongs to a person; GitLab's `alice` is alice),
the person who ran the pipeline comes from GitLab's signed ID token, a revoked token's
approvals stop counting, every effect is a write, and reads are scoped like writes.
"""

from __future__ import annotations

from promotion_service import db
from promotion_service.domain.actor import Actor
from promotion_service.services import tokens
from tests.promotion_service.helpers import (
    codes,
    deploy,
    digest,
    gate,
    promoted_to_staging,
    ref,
    register,
    verify,
)

OTHER = {"repository": "registry.example.com/other/app", "digest": digest(9)}


def make_token(app, name, role, person=None, project=None):
    with db.session_for(app) as session:
        return tokens.create(session, Actor.system("tests"), name=name, role=role,
                             person_name=person, project=project)[1]


def in_staging(api, app, n=1, **registration):
    """Image n registered (as registration says), verified in test, live in staging."""
    promoted_to_staging(api, app, n, **registration)
    deploy(api, n, "staging")
    verify(api, n, "staging")


def approve(api, n, who, environment="production", **extra):
    return api.post("/approvals", json=ref(n, environment) | extra, as_=who)


# -- four-eyes and N-of-M ------------------------------------------------------------------

def test_b_who_ran_the_pipeline_comes_from_its_id_token_not_a_variable(api, app, id_token):
    # CD_TRIGGERED_BY=someone-else used to land in the body and decide who is excluded
    forged = api.post("/images", json=ref(1) | {"project": "group/app",
                                                "triggered_by": "bob"},
                      as_=id_token(user_login="carol"))
    assert forged.status_code == 422
    registered = api.post("/images", json=ref(1) | {"project": "group/app"},
                          as_=id_token(user_login="carol"))
    assert registered.json["triggered_by"] == "carol"
    api.post("/scans", json=ref(1) | {"counts": {"critical": 0}})
    in_staging(api, app)
    resp = approve(api, 1, "carol")
    assert resp.status_code == 403 and "four-eyes" in resp.json["message"]


def test_c_a_token_named_with_other_letters_is_the_same_person(api, app):
    api.tokens["Carol-2"] = make_token(app, "Carol-2", "approver", person="Carol")
    in_staging(api, app, triggered_by="carol")
    resp = approve(api, 1, "Carol-2")
    assert resp.status_code == 403 and "four-eyes" in resp.json["message"]


def test_the_commit_author_may_not_approve_either(api, app):
    in_staging(api, app, commit_author="Bob Builder <bob@example.com>")
    resp = approve(api, 1, "bob")
    assert resp.status_code == 403 and "four-eyes" in resp.json["message"]
    assert "bob" in gate(api, 1, "production").json["reasons"][0]["satisfy"]


def test_d_two_tokens_of_one_person_count_once(api, app):
    api.tokens["alice-phone"] = make_token(app, "alice-phone", "approver", person="alice")
    in_staging(api, app)
    assert approve(api, 1, "alice").status_code == 201
    again = approve(api, 1, "alice-phone")
    assert again.status_code == 200  # the same person's same decision
    refused = gate(api, 1, "production")
    assert codes(refused) == ["approvals_missing"]
    assert refused.json["reasons"][0]["details"]["approved_by"] == ["alice"]
    assert approve(api, 1, "bob").status_code == 201
    assert gate(api, 1, "production").json["allowed"] is True


def test_revoking_a_token_withdraws_the_approvals_it_gave(api, app):
    in_staging(api, app)
    approve(api, 1, "alice")
    approve(api, 1, "rm", decision="reject", comment="not yet")
    with db.session_for(app) as session:
        _, withdrawn = tokens.revoke(session, Actor.system("tests"), "alice")
    assert len(withdrawn) == 1
    standing = api.get("/approvals", query_string=ref(1, "production")).json
    assert [(a["actor"], a["decision"]) for a in standing] == [("rm", "reject")]
    entry = api.get("/audit", query_string={"action": "approval.withdrawn"}).json[0]
    assert entry["after"]["why"] == "token alice revoked"
    assert approve(api, 1, "alice").status_code == 401


def test_a_token_revoked_while_a_process_remembers_it_cannot_approve(api, app):
    in_staging(api, app)
    app.config["TOKEN_CACHE_SECONDS"] = 60
    assert api.get("/images", as_="alice").status_code == 200  # remembered now
    with db.session_for(app) as session:
        tokens.revoke(session, Actor.system("tests"), "alice")
    resp = approve(api, 1, "alice")
    assert resp.status_code == 401 and "revoked" in resp.json["message"]


# -- every effect is a write ---------------------------------------------------------------

def test_asking_the_gate_claims_nothing(api, app):
    promotion_id = promoted_to_staging(api, app, 1)
    # any token asking with a made-up pipeline used to claim the promotion
    asked = gate(api, 1, "staging", as_="alice", promotion_id=promotion_id, pipeline_id=999)
    assert asked.json["allowed"] is True
    assert api.get(f"/promotions/{promotion_id}").json["pipeline_id"] is None
    claimed = api.post("/claims", json=ref(1, "staging") | {"promotion_id": promotion_id,
                                                            "pipeline_id": 55})
    assert claimed.status_code == 201
    assert api.post("/claims", json=ref(1, "staging") | {"promotion_id": promotion_id,
                                                         "pipeline_id": 55},
                    as_="alice").status_code == 403  # approvers claim nothing


def test_a_ci_token_cannot_write_production_for_an_image_the_gate_refuses(api, app):
    in_staging(api, app)
    assert codes(gate(api, 1, "production")) == ["approvals_missing"]
    deployed = api.post("/deployments", json=ref(1, "production") | {"state": "succeeded"})
    verified = api.post("/verifications", json=ref(1, "production") | {"passed": True})
    assert (deployed.status_code, verified.status_code) == (409, 409)
    assert "no promotion or rollback" in deployed.json["message"]
    assert api.get("/projects/1/environments/production/releases").json == []


def test_a_project_registers_only_its_own_repositories(api, app):
    # other/app used to be able to take group/app's repository and lock group/app out
    foreign = api.post("/images", json=ref(1) | {"project": "other/app"}, as_="ci-other")
    assert foreign.status_code == 403
    assert "not a repository of project other/app" in foreign.json["message"]
    assert api.post("/images", json=ref(1) | {"project": "group/app"}).status_code == 201
    assert api.post("/images", json=OTHER | {"project": "other/app"},
                    as_="ci-other").status_code == 201


def test_a_policy_change_needs_the_whole_policy_and_loosening_is_explicit(api, app):
    register(api, 1)
    path = "/projects/1/environments/production/policy"
    empty = api.put(path, json={}, as_="admin")
    assert empty.status_code == 422
    assert {"required_approvals", "four_eyes", "reason"} <= set(empty.json["errors"]["json"])
    policy = api.get("/projects/1").json["environments"][2]["policy"]
    looser = policy | {"required_approvals": 0, "four_eyes": False, "reason": "hotfix"}
    refused = api.put(path, json=looser, as_="admin")
    assert refused.status_code == 409
    assert "required_approvals 2 -> 0" in refused.json["message"]
    assert "four_eyes true -> false" in refused.json["message"]
    assert api.put(path, json=looser | {"loosen": True}, as_="admin").status_code == 200
    [entry] = api.get("/audit", query_string={"action": "environment.policy_loosened"}).json
    assert entry["after"]["reason"] == "hotfix" and len(entry["after"]["loosened"]) == 2
    tighter = api.put(path, json=looser | {"required_approvals": 1}, as_="admin")
    assert tighter.status_code == 200


# -- reads are scoped ----------------------------------------------------------------------

def test_a_project_scoped_token_reads_only_its_project(api, app):
    in_staging(api, app)
    api.post("/images", json=OTHER | {"project": "other/app"}, as_="ci-other")
    image_1 = api.get("/images", query_string={"digest": ref(1)["digest"]}, as_="rm").json[0]
    assert [i["repository"] for i in api.get("/images", as_="ci-other").json] == [
        OTHER["repository"]]
    assert api.get(f"/images/{image_1['id']}", as_="ci-other").status_code == 403
    assert api.get("/images", query_string={"project": "group/app"},
                   as_="ci-other").status_code == 403
    assert api.get("/promotions", as_="ci-other").json == []
    assert [p["path"] for p in api.get("/projects", as_="ci-other").json] == ["other/app"]
    assert api.get("/projects/1", as_="ci-other").status_code == 403
    assert api.get("/projects/1/environments/staging/releases",
                   as_="ci-other").status_code == 403
    assert api.get("/approvals", query_string=ref(1, "production"),
                   as_="ci-other").status_code == 403
    subjects = {(e["subject_type"], e["action"]) for e in api.get("/audit",
                                                                  as_="ci-other").json}
    assert subjects == {("project", "project.created"), ("image", "image.registered"),
                        ("release", "release.registered")}
    assert len(api.get("/audit", query_string={"page_size": 100}, as_="rm").json) > 10
