"""A rollback goes back, never forward: the release rolled back from is marked rolled back in
that environment (when, by whom, why), the next rollback skips it (4 -> 3 -> 2), and the gate
keeps it out of the next environment until it is rolled forward by an explicit promotion."""

from __future__ import annotations

from tests.promotion_service.helpers import codes, deploy, gate, ref, verify
from tests.promotion_service.services.test_rollback import STAGING, releases, to_staging

PIPELINES = iter(range(500, 600))


def service_rollback(api, reason="bad release"):
    """The service's rollback of staging, claimed by its pipeline: (promotion, record id)."""
    resp = api.post(f"{STAGING}/rollback", json={"reason": reason}, as_="rm")
    assert resp.status_code == 201, resp.json
    claimed = api.post("/claims", json={"kind": "rollback", "environment": "staging",
                                        "project": "group/app", "promotion_id": resp.json["id"],
                                        "pipeline_id": next(PIPELINES)})
    assert claimed.status_code == 201, claimed.json
    return resp.json, claimed.json["record_id"]


def image_of(rollout):
    return rollout["image"].rsplit("@", 1)[1]


def rolled_back_rollouts(api):
    return {image_of(r): (r["rolled_back_by"], r["rolled_back_reason"])
            for r in releases(api) if r["rolled_back_at"]}


def three_in_staging(api, app):
    """Releases 1, 2, 3 went through staging in turn: their record ids there."""
    return [to_staging(api, app, n, 100 + n)[1] for n in (1, 2, 3)]


def test_the_release_rolled_back_from_is_marked_rolled_back_there(api, app):
    records = three_in_staging(api, app)
    rollback, record = service_rollback(api)
    assert record == records[1]
    assert rolled_back_rollouts(api) == {}  # requested is not done: 3 still serves
    deploy(api, 2, "staging", rollback_of=record)
    assert rolled_back_rollouts(api) == {ref(3)["digest"]: ("rm", "bad release")}
    live = releases(api)[0]
    assert image_of(live) == ref(2)["digest"] and live["rolled_back_at"] is None
    assert api.get(f"/promotions/{rollback['id']}").json["state"] == "verified"


def test_two_rollbacks_in_a_row_go_back_two_releases_then_409_naming_the_environment(api, app):
    records = three_in_staging(api, app)
    _, record = service_rollback(api)
    deploy(api, 2, "staging", rollback_of=record)
    rollback, record = service_rollback(api, "still bad")
    assert (rollback["release_id"], record) == (1, records[0])  # back, not forward to 3
    deploy(api, 1, "staging", rollback_of=record)
    assert rolled_back_rollouts(api) == {ref(3)["digest"]: ("rm", "bad release"),
                                         ref(2)["digest"]: ("rm", "still bad")}
    refused = api.post(f"{STAGING}/rollback", json={"reason": "again"}, as_="rm")
    assert refused.status_code == 409, refused.json
    assert "staging" in refused.json["message"]


def test_the_rollback_job_started_by_hand_after_a_rollback_goes_further_back(api, app):
    # the adoption trial's steps: the rollback-staging job by hand, then the service's
    records = three_in_staging(api, app)
    claimed = api.post("/claims", json={"kind": "rollback", "environment": "staging",
                                        "project": "group/app", "pipeline_id": 300})
    assert claimed.json["record_id"] == records[1]
    deploy(api, 2, "staging", rollback_of=records[1])
    assert rolled_back_rollouts(api) == {ref(3)["digest"]: ("ci-bot", "rollback job")}
    rollback, record = service_rollback(api)
    assert (rollback["release_id"], record) == (1, records[0])


def test_a_rollback_that_fails_leaves_the_history_as_it_was(api, app):
    three_in_staging(api, app)
    rollback, record = service_rollback(api)
    deploy(api, 2, "staging", state="failed", rollback_of=record,
           message="health check failed")
    assert rolled_back_rollouts(api) == {}
    assert image_of(releases(api)[0]) == ref(3)["digest"]
    assert api.get(f"/promotions/{rollback['id']}").json["state"] == "failed"


def test_a_release_rolled_back_out_of_staging_may_not_go_to_production(api, app):
    three_in_staging(api, app)
    _, record = service_rollback(api)
    deploy(api, 2, "staging", rollback_of=record)
    answer = gate(api, 3, "production").json
    assert answer["allowed"] is False
    [reason] = [r for r in answer["reasons"] if r["code"] == "rolled_back"]
    assert "rolled back out of staging" in reason["message"]
    assert "by rm" in reason["message"] and "bad release" in reason["message"]
    assert reason["details"]["environment"] == "staging"
    for approver in ("alice", "bob"):
        api.post("/approvals", json=ref(3, "production") | {"decision": "approve"},
                 as_=approver)
    refused = api.post("/promotions", json=ref(3, "production"), as_="rm")
    assert refused.status_code == 409 and codes(refused) == ["rolled_back"]
    assert "rolled_back" not in codes(gate(api, 2, "production"))  # the one serving may go


def test_rolling_forward_is_an_explicit_promotion_with_a_reason_audited(api, app):
    three_in_staging(api, app)
    _, record = service_rollback(api)
    deploy(api, 2, "staging", rollback_of=record)
    api.delete(f"{STAGING}/hold", as_="rm")
    unexplained = api.post("/promotions", json=ref(3, "staging"), as_="rm")
    assert unexplained.status_code == 422, unexplained.json
    assert "reason" in unexplained.json["errors"]["json"]
    assert "rolled back out of staging" in unexplained.json["errors"]["json"]["reason"][0]
    forward = api.post("/promotions", json=ref(3, "staging") | {"reason": "fixed config"},
                       as_="rm")
    assert forward.status_code == 201, forward.json
    [entry] = api.get("/audit", query_string={"action": "promotion.requested",
                                              "subject_id": forward.json["id"]}).json
    assert entry["after"]["roll_forward"]["rolled_back_by"] == "rm"
    assert entry["after"]["reason"] == "fixed config"
    api.post("/claims", json=ref(3, "staging") | {"promotion_id": forward.json["id"],
                                                  "pipeline_id": 700})
    deploy(api, 3, "staging")
    verify(api, 3, "staging")
    assert "rolled_back" not in codes(gate(api, 3, "production"))
    # rolled forward and verified: a later rollback may come back to it
    _, record = service_rollback(api)
    assert image_of(releases(api)[0]) == ref(3)["digest"]
    assert record != releases(api)[0]["record_id"]


def test_the_gitlab_rollback_button_does_not_bring_back_a_release_rolled_back(api, app):
    first = to_staging(api, app, 1, 101)
    promotion_of_2, _ = to_staging(api, app, 2, 102)
    _, record = service_rollback(api)
    assert record == first[1]
    deploy(api, 1, "staging", rollback_of=record)
    rerun = api.post("/claims", json=ref(2, "staging") | {"promotion_id": promotion_of_2,
                                                          "pipeline_id": 102})
    assert rerun.status_code == 409, rerun.json
    assert codes(rerun) == ["rolled_back"]
    assert "explicit promotion" in rerun.json["reasons"][0]["satisfy"]


def test_a_rollback_job_naming_a_record_rolled_back_there_is_refused(api, app):
    records = three_in_staging(api, app)
    _, record = service_rollback(api)
    deploy(api, 2, "staging", rollback_of=record)
    refused = api.post("/claims", json={"kind": "rollback", "environment": "staging",
                                        "project": "group/app", "pipeline_id": 900,
                                        "record_id": records[2]})
    assert refused.status_code == 409 and codes(refused) == ["rolled_back"]


def test_dora_counts_the_release_a_rollback_left_as_a_failed_change(api, app):
    three_in_staging(api, app)
    _, record = service_rollback(api)
    deploy(api, 2, "staging", rollback_of=record)
    [staging] = api.get("/metrics/dora", query_string={"environment": "staging"}).json
    # releases 1, 2, 3 and the rollback's rollout went live; release 3 was rolled back
    assert (staging["deployments"], staging["failed_deployments"]) == (4, 1)
    assert staging["change_failure_rate"] == 0.25
    assert staging["restores"] == 1
