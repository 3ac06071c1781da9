"""Releases of several images: one identity, one gate, one promotion, one trigger."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import pytest
from sqlalchemy import select

from promotion_service import db
from promotion_service.db.models import Outbox
from tests.promotion_service.helpers import (
    RACE_SETTINGS,
    REPO,
    codes,
    digest,
    registrations,
    soak,
)
from tests.promotion_service.web.pages import Browser

TEMPLATE = "sha256:" + "7e" * 32
KV = "docker.io/library/kv"  # a third-party image, pinned by digest at release time


def members(worker: int = 2) -> list[dict]:
    return [{"name": "api", "repository": f"{REPO}/api", "digest": digest(1)},
            {"name": "worker", "repository": f"{REPO}/worker", "digest": digest(worker)},
            {"name": "kv", "repository": KV, "digest": digest(99), "built": False}]


def register(api, body_members=None, template_hash=TEMPLATE, as_="ci-bot", scan=True,
             **fields):
    resp = api.post("/releases", json={"project": "group/app", "members":
                                       body_members or members(),
                                       "template_hash": template_hash,
                                       "commit_sha": "ab" * 20} | fields, as_=as_)
    assert resp.status_code in (200, 201), resp.json
    if scan:
        for m in resp.json["members"]:
            if m["built"]:
                counts = {"critical": 0, "high": 0}
                assert api.post("/scans", json={"repository": m["repository"],
                                                "digest": m["digest"],
                                                "counts": counts}).status_code == 201
    return resp


def in_test(api, release_id):
    """The release deployed and verified in test."""
    body = {"release_id": release_id, "environment": "test"}
    assert api.post("/deployments", json=body | {"state": "succeeded"}).status_code == 201
    assert api.post("/verifications", json=body | {"passed": True}).status_code == 201


@pytest.mark.parametrize("app_settings", [RACE_SETTINGS], ids=["race"])
def test_fifty_identical_registrations_make_one_release(app, api, tokens):
    racers = 50
    barrier = Barrier(racers)

    def post(_):
        client = app.test_client()
        barrier.wait()
        resp = client.post("/api/v1/releases", json={
            "project": "group/app", "members": members(), "template_hash": TEMPLATE},
            headers={"Authorization": f"Bearer {tokens['ci-bot']}"})
        return resp.status_code, resp.json.get("id")

    with ThreadPoolExecutor(racers) as pool:
        results = list(pool.map(post, range(racers)))
    assert sorted(s for s, _ in results) == [200] * (racers - 1) + [201], results
    [release_id] = {release_id for _, release_id in results}
    images = {m["image_id"] for m in api.get(f"/releases/{release_id}").json["members"]}
    assert registrations(api) == sorted([("image.registered", str(i)) for i in images]
                                        + [("release.registered", str(release_id))])
    assert len(api.get("/images").json) == 3


def test_the_same_set_is_the_same_release_and_another_template_a_new_one(api):
    first = register(api)
    assert first.status_code == 201
    assert first.json["digest"].startswith("sha256:")
    assert [m["name"] for m in first.json["members"]] == ["api", "kv", "worker"]
    assert register(api, list(reversed(members()))).json["id"] == first.json["id"]
    other = register(api, template_hash="sha256:" + "8f" * 32)
    assert other.status_code == 201 and other.json["id"] != first.json["id"]
    shown = api.get(f"/releases/{first.json['id']}").json
    assert shown["template_hash"] == TEMPLATE and shown["project"] == "group/app"
    listed = api.get("/releases", query_string={"project": "group/app"}).json
    assert [r["id"] for r in listed] == [other.json["id"], first.json["id"]]


def test_a_built_member_outside_the_projects_repositories_is_refused_leaving_nothing(api):
    resp = api.post("/releases", json={"project": "group/app", "members": [
        {"name": "api", "repository": f"{REPO}/api", "digest": digest(1)},
        {"name": "other", "repository": "registry.example.com/other/app", "digest": digest(2)}]})
    assert resp.status_code == 403 and "other/app" in resp.json["message"]
    assert api.get("/images").json == []  # not even the member that was allowed
    assert registrations(api) == []


def test_a_member_registered_for_another_project_is_a_conflict_leaving_nothing(api):
    # project "group" owns the repositories below registry.example.com/group, group/app's too
    worker = {"name": "worker", "repository": f"{REPO}/worker", "digest": digest(2)}
    register(api, [worker], scan=False)  # group/app's image
    tool = {"name": "tool", "repository": "registry.example.com/group/tool", "digest": digest(5)}
    resp = api.post("/releases", json={"project": "group", "members": [tool, worker]},
                    as_="admin")
    assert resp.status_code == 409 and "group/app" in resp.json["message"]
    assert api.get("/images", query_string={"repository": tool["repository"]},
                   as_="admin").json == []
    assert [a for a, _ in registrations(api)] == ["image.registered", "release.registered"]


def test_bad_members_are_named(api):
    bad_name = [*members()[:1], {"name": "Worker!", "repository": f"{REPO}/w",
                                 "digest": digest(3)}]
    resp = api.post("/releases", json={"project": "group/app", "members": bad_name})
    assert resp.status_code == 422 and "members" in resp.json["errors"]["json"]
    twice = members()[:1] * 2
    resp = api.post("/releases", json={"project": "group/app", "members": twice})
    assert resp.status_code == 422 and "given twice" in resp.json["errors"]["json"]["members"][0]
    many = [{"name": f"m{i}", "repository": f"{REPO}/m{i}", "digest": digest(i)}
            for i in range(51)]
    resp = api.post("/releases", json={"project": "group/app", "members": many})
    assert resp.status_code == 422 and "members" in resp.json["errors"]["json"]


def test_gate_reasons_name_the_member_at_fault(api):
    release = register(api, scan=False).json
    api.post("/scans", json={"repository": f"{REPO}/api", "digest": digest(1),
                             "counts": {"critical": 0}})
    api.post("/scans", json={"repository": f"{REPO}/worker", "digest": digest(2),
                             "counts": {"critical": 2},
                             "findings": [{"id": "CVE-2026-7", "severity": "critical"}]})
    in_test(api, release["id"])
    answer = api.get("/gate", query_string={"release_id": release["id"],
                                            "environment": "staging"}).json
    assert answer["allowed"] is False and answer["release_id"] == release["id"]
    [scan] = [r for r in answer["reasons"] if r["code"] == "scan_failed"]
    label = f"worker@{digest(2)[:19]}"
    assert scan["message"].startswith(f"{label} has 2 critical finding(s)")
    assert scan["details"]["member"] == "worker"
    assert all("kv@" not in r["message"] for r in answer["reasons"])  # third-party: no scan


def test_an_image_in_releases_of_several_images_only_needs_the_release_id(api):
    register(api)
    resp = api.get("/gate", query_string={"repository": f"{REPO}/worker", "digest": digest(2),
                                          "environment": "test"})
    assert resp.status_code == 422 and "release_id" in resp.json["errors"]["query"]


def test_revoking_a_member_blocks_every_release_with_it_naming_it(api, app):
    first = register(api).json
    second = register(api, members()[:2]).json  # the same worker without kv
    in_test(api, first["id"])
    worker_image = next(m["image_id"] for m in first["members"] if m["name"] == "worker")
    resp = api.post(f"/images/{worker_image}/revoke", json={"reason": "CVE-2026-9"}, as_="rm")
    assert resp.status_code == 200, resp.json
    assert resp.json["releases"] == [
        {"id": first["id"], "digest": first["digest"], "environments": ["test"]},
        {"id": second["id"], "digest": second["digest"], "environments": []}]
    refused = api.post("/promotions", json={"release_id": first["id"],
                                            "environment": "staging"}, as_="rm")
    assert refused.status_code == 409 and "revoked" in codes(refused)
    [reason] = [r for r in refused.json["reasons"] if r["code"] == "revoked"]
    assert reason["message"] == f"worker@{digest(2)[:19]} was revoked: CVE-2026-9"
    assert api.get(f"/releases/{second['id']}").json["revoked"] is True
    assert soak(app) == []  # nothing promotes it by itself either


def test_four_eyes_keeps_out_whoever_built_any_member(api, app):
    # alice's pipeline built the worker image; a later pipeline reuses it in a release
    api.post("/images", json={"project": "group/app", "repository": f"{REPO}/worker",
                              "digest": digest(2), "triggered_by": "alice"})
    release = register(api, triggered_by="dev").json
    in_test(api, release["id"])
    [_] = soak(app)  # into staging
    body = {"release_id": release["id"], "environment": "staging"}
    api.post("/deployments", json=body | {"state": "succeeded"})
    api.post("/verifications", json=body | {"passed": True})
    soak(app)
    production = {"release_id": release["id"], "environment": "production"}
    refused = api.post("/approvals", json=production, as_="alice")
    assert refused.status_code == 403 and "four-eyes" in refused.json["message"]
    assert api.post("/approvals", json=production, as_="bob").status_code == 201
    assert api.post("/approvals", json=production, as_="rm").status_code == 201
    answer = api.get("/gate", query_string=production).json
    assert answer["allowed"] is True, answer["reasons"]
    promoted = api.get("/promotions", query_string={"environment": "production"}).json
    assert [p["release_id"] for p in promoted] == [release["id"]]


def test_the_staging_trigger_carries_the_release_and_every_member(api, app):
    release = register(api).json
    in_test(api, release["id"])
    [promotion_id] = soak(app)
    with db.session_for(app, write=False) as session:
        [row] = session.scalars(select(Outbox).where(Outbox.promotion_id == promotion_id))
    refs = {m["name"]: f"{m['repository']}@{m['digest']}" for m in release["members"]}
    assert row.payload["variables"] == {
        "CD_RELEASE_ID": str(release["id"]), "CD_IMAGE_API": refs["api"],
        "CD_IMAGE_WORKER": refs["worker"], "CD_IMAGE_KV": refs["kv"],
        "CD_RELEASE_COMMIT": "ab" * 20, "CD_RELEASE_TEMPLATE_HASH": TEMPLATE,
        "CD_TARGET_ENVIRONMENT": "staging", "CD_PROMOTION_ID": str(promotion_id)}


def test_an_image_registered_alone_is_its_one_member_release(api):
    image = api.post("/images", json={"project": "group/app", "repository": REPO,
                                      "digest": digest(5)}).json
    release = api.get(f"/releases/{image['release_id']}").json
    assert [(m["name"], m["digest"]) for m in release["members"]] == [("app", digest(5))]
    again = api.post("/releases", json={"project": "group/app", "members": [
        {"name": "app", "repository": REPO, "digest": digest(5)}]})
    assert (again.status_code, again.json["id"]) == (200, image["release_id"])


def test_four_eyes_keeps_out_who_built_a_member_even_when_a_release_calls_it_third_party(
        api, app, tokens):
    # alice's pipeline built the worker; a later release lists it as not built by its pipeline
    api.post("/images", json={"project": "group/app", "repository": f"{REPO}/worker",
                              "digest": digest(2), "triggered_by": "alice"})
    listed = [dict(m, built=False) if m["name"] == "worker" else m for m in members()]
    release = register(api, listed, triggered_by="dev").json
    production = {"release_id": release["id"], "environment": "production"}
    refused = api.post("/approvals", json=production, as_="alice")
    assert refused.status_code == 403 and "four-eyes" in refused.json["message"]
    alice = Browser(app.test_client())
    alice.sign_in(tokens["alice"])
    page = alice.post(f"/ui/releases/{release['id']}/decisions",
                                 {"environment": "production", "decision": "approve",
                                  "reason": "mine"}, from_page=f"/ui/releases/{release['id']}")
    assert page.status_code == 403 and "four-eyes" in page.text
    gate = api.get("/gate", query_string=production).json
    [missing] = [r for r in gate["reasons"] if r["code"] == "approvals_missing"]
    assert "alice" in missing["details"]["excluded"]
    # a third-party image nobody here built keeps nobody out
    assert "dev" in missing["details"]["excluded"] and len(missing["details"]["excluded"]) == 3


def test_a_project_cannot_block_another_s_image_by_pinning_it_first(api):
    # other/app pins group/app's api image as a third-party member before group/app's pipeline
    # registers the image it built
    pinned = {"name": "api", "repository": f"{REPO}/api", "digest": digest(1), "built": False}
    theirs = api.post("/releases", json={"project": "other/app", "members": [pinned]},
                      as_="ci-other")
    assert theirs.status_code == 201, theirs.json
    ours = register(api, triggered_by="dev", scan=False)
    assert ours.status_code == 201, ours.json
    [api_member] = [m for m in ours.json["members"] if m["name"] == "api"]
    image = api.get(f"/images/{api_member['image_id']}").json
    assert (image["project"], image["commit_sha"], image["triggered_by"]) == (
        "group/app", "ab" * 20, "dev")
    # their release still pins it; the move is audited
    assert api.get(f"/releases/{theirs.json['id']}", as_="admin").json["members"][0][
        "image_id"] == api_member["image_id"]
    claimed = api.get("/audit", query_string={"action": "image.claimed"}, as_="admin").json
    assert [(e["subject_id"], e["before"], e["after"]["project"]) for e in claimed] == [
        (str(api_member["image_id"]), {"project": "other/app"}, "group/app")]

