"""What a project-scoped token reads of the audit log: the entries about its project (the
project, its environments, images, releases, and their promotions and deployments); never
the entries about no project (tokens, emergency stops) nor another project's."""

from __future__ import annotations

import json

from promotion_service import db
from promotion_service.domain.actor import Actor
from promotion_service.services import tokens
from tests.promotion_service.api.test_authorisation import OTHER, approve, in_staging
from tests.promotion_service.helpers import REPO, digest, register
from tests.promotion_service.web.pages import Browser

HELD = {"reason": "release freeze"}


def mixed_log(api, app):
    """A log with entries of every kind: two projects' images, releases, scans,
    deployments, verifications, promotions, approvals (one withdrawn by revoking its
    token), a hold, a policy change, an image revoked, tokens, an emergency stop."""
    in_staging(api, app)
    assert api.post("/images", json=OTHER | {"project": "other/app"},
                    as_="ci-other").status_code == 201
    assert approve(api, 1, "alice").status_code == 201
    assert approve(api, 1, "carol").status_code == 201
    with db.session_for(app) as session:
        tokens.revoke(session, Actor.system("tests"), "carol")  # withdraws her approval
    assert api.put("/projects/1/environments/test/hold", json=HELD, as_="rm").status_code == 200
    assert api.delete("/projects/1/environments/test/hold", as_="rm").status_code == 200
    policy = api.get("/projects/1").json["environments"][2]["policy"]
    assert api.put("/projects/1/environments/production/policy", as_="admin",
                   json=policy | {"required_approvals": 3, "reason": "audit"}).status_code == 200
    stop = api.post("/stops", json={"environments": ["production"], "reason": "incident"},
                    as_="rm")
    assert api.delete(f"/stops/{stop.json[0]['id']}", as_="rm").status_code == 200
    [other] = api.get("/images", as_="ci-other").json
    assert api.post(f"/images/{other['id']}/revoke", json={"reason": "CVE-2026-9"},
                    as_="rm").status_code == 200


def seen(api, who):
    return [(e["action"], e["subject_type"])
            for e in api.get("/audit", query_string={"page_size": 100}, as_=who).json]


def test_a_project_scoped_token_reads_exactly_its_projects_entries(api, app, tokens):
    mixed_log(api, app)
    everything = seen(api, "rm")
    assert {"token", "stop"} <= {kind for _, kind in everything}
    assert seen(api, "ci-bot") == [
        ("environment.policy_changed", "environment"),
        ("environment.hold_lifted", "environment"),
        ("environment.hold_set", "environment"),
        ("approval.withdrawn", "release"),
        ("promotion.requested", "promotion"),  # into production, on the approvals
        ("approval.approve", "release"),
        ("approval.approve", "release"),
        ("promotion.verified", "promotion"),
        ("verification.recorded", "release"),
        ("promotion.deployed", "promotion"),
        ("promotion.deploying", "promotion"),
        ("deployment.recorded", "deployment"),
        ("promotion.requested", "promotion"),
        ("verification.recorded", "release"),
        ("deployment.recorded", "deployment"),
        ("scan.recorded", "image"),
        ("release.registered", "release"),
        ("image.registered", "image"),
        ("project.created", "project"),
    ]
    assert seen(api, "ci-other") == [
        ("image.revoked", "image"),
        ("release.registered", "release"),
        ("image.registered", "image"),
        ("project.created", "project"),
    ]
    # the audit page and its exports read the same entries
    other = Browser(app.test_client())
    other.sign_in(tokens["ci-other"])
    exported = [json.loads(line) for line in other.get("/ui/audit.jsonl").text.splitlines()]
    assert [(e["action"], e["subject_type"]) for e in exported] == seen(api, "ci-other")


def test_an_entry_stays_with_the_project_its_subject_belonged_to_when_written(api):
    # other/app pins group/app's image as a third-party member; group/app's pipeline then
    # registers the image it built and takes it over: what other/app's token wrote about the
    # image stays other/app's, what follows the move is group/app's
    pinned = {"name": "app", "repository": REPO, "digest": digest(1), "built": False}
    assert api.post("/releases", json={"project": "other/app", "members": [pinned]},
                    as_="ci-other").status_code == 201
    register(api, 1)
    assert seen(api, "ci-other") == [("release.registered", "release"),
                                     ("image.registered", "image"),
                                     ("project.created", "project")]
    assert seen(api, "ci-bot") == [("scan.recorded", "image"),
                                   ("release.registered", "release"),
                                   ("image.claimed", "image"),
                                   ("project.created", "project")]
