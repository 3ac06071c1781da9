"""One rollback meaning everywhere: back to a release verified in that environment, named by
the target's release id, with a hold on the environment; the gate names the hold; deployments
a killed job left open are closed."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from promotion_service import db
from promotion_service.db.models import Deployment, Outbox
from promotion_service.services.reports import close_abandoned
from tests.promotion_service.helpers import (
    age,
    codes,
    deploy,
    gate,
    promoted_to_staging,
    ref,
    register,
    soak,
    verify,
)

STAGING = "/projects/1/environments/staging"


def to_staging(api, app, n, pipeline_id):
    """Image n through test into staging by its promotion, claimed by `pipeline_id`."""
    promotion_id = promoted_to_staging(api, app, n)
    claimed = api.post("/claims", json=ref(n, "staging") | {
        "promotion_id": promotion_id, "pipeline_id": pipeline_id})
    assert claimed.status_code == 201, claimed.json
    release = deploy(api, n, "staging")["record_id"]
    verify(api, n, "staging")
    return promotion_id, release


def releases(api):
    return api.get(f"{STAGING}/releases").json


def held_by(api):
    return api.get("/projects/1").json["environments"][1]["hold"]


def test_a_service_rollback_names_the_verified_release_its_pipeline_restores(api, app):
    _, first = to_staging(api, app, 1, 101)
    to_staging(api, app, 2, 102)
    resp = api.post(f"{STAGING}/rollback", json={"reason": "bad release"}, as_="rm")
    assert resp.status_code == 201, resp.json
    assert (resp.json["kind"], resp.json["record_id"]) == ("rollback", first)
    with db.session_for(app, write=False) as session:
        payload = session.scalars(select(Outbox).order_by(Outbox.id.desc())).first().payload
    assert payload["variables"]["CD_ROLLBACK_TO"] == first
    assert payload["variables"]["CD_IMAGE"] == f"{ref(1)['repository']}@{ref(1)['digest']}"

    # the triggered pipeline's rollback job claims it, restores `first`, reports it
    claimed = api.post("/claims", json={"kind": "rollback", "environment": "staging",
                                        "project": "group/app", "record_id": first,
                                        "promotion_id": resp.json["id"], "pipeline_id": 200})
    assert claimed.status_code == 201, claimed.json
    assert claimed.json["record_id"] == first
    assert claimed.json["promotion"]["id"] == resp.json["id"]
    deploy(api, 1, "staging", record_id="20260102T000000000Z-beef", rollback_of=first)
    latest = releases(api)[0]
    assert (latest["record_id"], latest["rollback_of"]) == ("20260102T000000000Z-beef", first)
    assert latest["verified_at"] is not None  # what runs now was verified there before
    assert api.get(f"/promotions/{resp.json['id']}").json["state"] == "verified"
    assert held_by(api)["by"] == "rm"


def test_the_rollback_job_started_by_hand_goes_where_the_service_would(api, app):
    _, first = to_staging(api, app, 1, 101)
    to_staging(api, app, 2, 102)
    claimed = api.post("/claims", json={"kind": "rollback", "environment": "staging",
                                        "project": "group/app", "pipeline_id": 300})
    assert claimed.status_code == 201, claimed.json
    assert claimed.json["record_id"] == first
    assert claimed.json["image"].endswith(ref(1)["digest"])
    assert claimed.json["hold"]["by"] == "ci-bot"
    assert "rollback job" in held_by(api)["reason"]


def test_a_rollback_to_a_release_never_verified_there_is_refused(api, app):
    to_staging(api, app, 1, 101)
    refused = api.post("/claims", json={"kind": "rollback", "environment": "staging",
                                        "project": "group/app", "pipeline_id": 300,
                                        "record_id": "20990101T000000000Z-0000"})
    assert refused.status_code == 409 and codes(refused) == ["release_not_verified"]
    assert held_by(api) is None


def test_an_old_deploy_job_run_again_rolls_back_to_its_verified_image_and_holds(api, app):
    first_promotion, _ = to_staging(api, app, 1, 101)
    to_staging(api, app, 2, 102)
    # GitLab's environment "Rollback": pipeline 101's deploy job again, CD_PROMOTION_ID and all
    rerun = api.post("/claims", json=ref(1, "staging") | {"promotion_id": first_promotion,
                                                          "pipeline_id": 101})
    assert rerun.status_code == 201, rerun.json
    promotion = rerun.json["promotion"]
    assert (promotion["kind"], promotion["state"]) == ("rollback", "requested")
    assert promotion["id"] != first_promotion
    assert rerun.json["hold"]["reason"].startswith("rollback to release 1")
    deploy(api, 1, "staging")
    assert api.get(f"/promotions/{promotion['id']}").json["state"] == "verified"
    assert releases(api)[0]["image"].endswith(ref(1)["digest"])


def test_an_old_deploy_job_of_an_image_never_verified_there_is_refused(api, app):
    promotion_id = promoted_to_staging(api, app, 1)
    api.post("/claims", json=ref(1, "staging") | {"promotion_id": promotion_id,
                                                  "pipeline_id": 101})
    deploy(api, 1, "staging", state="failed")
    rerun = api.post("/claims", json=ref(1, "staging") | {"promotion_id": promotion_id,
                                                          "pipeline_id": 101})
    assert rerun.status_code == 409 and codes(rerun) == ["promotion_closed"]


def test_the_gate_names_a_hold_and_what_lifts_it(api, app):
    to_staging(api, app, 1, 101)
    to_staging(api, app, 2, 102)
    api.post(f"{STAGING}/rollback", json={"reason": "bad release"}, as_="rm")
    register(api, 3)
    deploy(api, 3, "test")
    verify(api, 3, "test")
    assert soak(app) == []  # held: nothing is promoted into staging by itself
    answer = gate(api, 3, "staging").json
    assert answer["allowed"] is False and [r["code"] for r in answer["reasons"]] == ["held"]
    assert answer["hold"]["by"] == "rm" and answer["hold"]["since"].endswith("Z")
    assert "bad release" not in answer["hold"]["reason"]  # the hold's own reason, not the ask
    assert "rollback to release 1" in answer["reasons"][0]["message"]
    assert "DELETE /api/v1/projects/1/environments/staging/hold" in answer["hold"]["lift"]
    assert answer["reasons"][0]["satisfy"] == answer["hold"]["lift"]
    api.delete(f"{STAGING}/hold", as_="rm")
    assert gate(api, 3, "staging").json == gate(api, 3, "staging").json | {
        "allowed": True, "reasons": [], "hold": None}


def test_a_deployment_a_killed_job_left_started_is_closed_after_the_timeout(api, app):
    promotion_id = promoted_to_staging(api, app, 1)
    started = deploy(api, 1, "staging", state="started")
    with db.session_for(app) as session:
        assert close_abandoned(session, 3600) == []  # not yet
    age(app, Deployment, timedelta(hours=2), column="updated_at")
    with db.session_for(app) as session:
        assert close_abandoned(session, 3600) == [started["id"]]
    promotion = api.get(f"/promotions/{promotion_id}").json
    assert promotion["state"] == "failed" and "probably killed" in promotion["failure_message"]
    [entry] = api.get("/audit", query_string={"action": "deployment.timed_out"}).json
    assert (entry["actor"], entry["subject_id"]) == ("promotion-service", str(started["id"]))
