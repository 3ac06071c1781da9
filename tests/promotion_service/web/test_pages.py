"""Each page and each action, for each role: what people see, and what the service does."""

from __future__ import annotations

import csv
import html
import io
import json
import re

from tests.promotion_service.helpers import deploy, promotions, register, soak, verify
from tests.promotion_service.web.pages import to_staging

STAGING = "/ui/projects/1/environments/staging"
FORMS = ("/decisions", "/promotions", "/revoke", "/rollback", "/hold", "/ui/stops")


def forms_in(html):
    return [path for path in FORMS if f'{path}"' in html]


def test_the_overview_shows_what_runs_where_its_state_and_what_waits(api, app, browser):
    to_staging(api, app, 1, 101)
    page = browser("alice").get("/ui/").text
    assert "group/app" in page and "1 project" in page
    assert page.count('<td class="cell">') == 3  # test, staging, production
    assert "verified" in page and "by ci-bot" in page
    # production's candidate is the image verified in staging, and says what it lacks
    assert "0 of 2 approval(s) for production" in page


def test_the_overview_filters_by_project_and_environment(api, app, browser):
    register(api, 1)
    alice = browser("alice")
    assert alice.get("/ui/?project=nothing-like-it").text.count('<td class="cell">') == 0
    only = alice.get("/ui/?project=group&environment=staging").text
    assert only.count('<td class="cell">') == 1 and "<th scope=\"col\">staging</th>" in only


def test_an_environment_filter_keeps_each_cells_candidate(api, app, browser):
    to_staging(api, app, 1, 101)
    only = browser("alice").get("/ui/?environment=production").text
    # the candidate comes from staging, which the filter leaves out of the columns
    assert only.count('<td class="cell">') == 1 and 'class="candidate"' in only
    assert "0 of 2 approval(s) for production" in only


def test_a_project_scoped_token_sees_its_own_project_only(api, app, browser, tokens):
    register(api, 1)
    other = browser("ci-other")
    assert "group/app" not in other.get("/ui/").text
    assert other.get("/ui/releases/1").status_code == 403
    assert other.get("/ui/images/1").status_code == 403  # not even which release it is in
    assert app.test_client().get("/ui/images/1").headers["Location"].startswith("/ui/sign-in")
    assert other.get("/ui/audit.jsonl").text.strip() == ""


def test_the_requester_is_told_why_they_may_not_approve_and_is_refused(api, app, browser):
    to_staging(api, app, 1, 101)
    register(api, 2, triggered_by="alice")
    deploy(api, 2, "test")
    verify(api, 2, "test")
    alice = browser("alice")
    page = alice.get("/ui/releases/2").text
    assert "You may not approve this: four-eyes: alice wrote, built or registered" in page
    refused = alice.post("/ui/releases/2/decisions", {"environment": "production",
                                                    "decision": "approve", "reason": "ok"},
                         from_page="/ui/releases/2")
    assert refused.status_code == 403 and "four-eyes" in refused.text


def test_an_approval_with_its_comment_shows_on_the_release_page_and_in_the_audit(
        api, app, browser):
    to_staging(api, app, 1, 101)
    bob = browser("bob")
    resp = bob.post("/ui/releases/1/decisions", {"environment": "production",
                                               "decision": "approve", "reason": "looks good",
                                               "next": "/ui/releases/1"},
                    from_page="/ui/releases/1")
    assert resp.status_code == 303 and resp.headers["Location"] == "/ui/releases/1"
    page = bob.get("/ui/releases/1").text
    assert "Approved for production." in page and "looks good" in page
    assert "1 of 2 approval(s) for production" in page
    [entry] = [json.loads(line) for line in bob.get("/ui/audit.jsonl?action=approval.approve")
               .text.splitlines()]
    assert entry["actor"] == "bob" and entry["after"]["comment"] == "looks good"


def test_the_ci_role_sees_no_action_and_a_forged_form_is_refused(api, app, browser):
    to_staging(api, app, 1, 101)
    ci = browser("ci-bot")
    for path in ("/ui/", "/ui/releases/1", STAGING):
        assert forms_in(ci.get(path).text) == [], path
    for path, data in (("/ui/releases/1/promotions", {"environment": "production"}),
                       (f"{STAGING}/rollback", {}), ("/ui/stops", {"environment": "test"}),
                       ("/ui/releases/1/decisions", {"environment": "production",
                                                   "decision": "approve"})):
        resp = ci.post(path, data | {"reason": "forged"})
        assert resp.status_code == 403 and "role 'ci' may not" in html.unescape(resp.text), path


def test_an_approver_sees_decisions_but_no_manager_action(api, app, browser):
    to_staging(api, app, 1, 101)
    alice = browser("alice")
    assert forms_in(alice.get("/ui/releases/1").text) == ["/decisions"]
    assert forms_in(alice.get(STAGING).text) == []
    rm = browser("rm")
    assert forms_in(rm.get("/ui/releases/1").text) == ["/decisions", "/promotions", "/revoke"]
    assert forms_in(rm.get(STAGING).text) == ["/rollback", "/hold"]


def test_every_action_needs_a_reason(api, app, browser):
    to_staging(api, app, 1, 101)
    resp = browser("rm").post(f"{STAGING}/hold", {"reason": " "}, from_page=STAGING)
    assert resp.status_code == 422 and "reason: is required" in resp.text


def test_roll_back_an_environment_with_a_reason(api, app, browser, gitlab):
    to_staging(api, app, 1, 101)
    to_staging(api, app, 2, 102)
    rm = browser("rm")
    resp = rm.post(f"{STAGING}/rollback", {"reason": "checkout broken"}, from_page=STAGING)
    assert resp.status_code == 303
    page = rm.get(STAGING).text
    assert "Rollback of staging requested" in page and "Held by rm" in page
    [rollback] = [p for p in promotions(api) if p["kind"] == "rollback"]
    assert rollback["reason"] == "checkout broken"
    assert rollback["release_id"] is not None


def test_a_rollout_rolled_back_shows_when_by_whom_and_why(api, app, browser):
    to_staging(api, app, 1, 101)
    to_staging(api, app, 2, 102)
    rm = browser("rm")
    rm.post(f"{STAGING}/rollback", {"reason": "checkout broken"}, from_page=STAGING)
    [rollback] = [p for p in promotions(api) if p["kind"] == "rollback"]
    api.post("/claims", json={"kind": "rollback", "environment": "staging",
                              "project": "group/app", "promotion_id": rollback["id"],
                              "pipeline_id": 300})
    deploy(api, 1, "staging", rollback_of=rollback["record_id"])
    page = html.unescape(rm.get(STAGING).text)
    assert re.search(r"rolled back [^<]* by rm: checkout broken", page), page
    release_page = html.unescape(rm.get("/ui/releases/2").text)
    assert "rolled back out of staging" in release_page  # production's gate says why not
    assert re.search(r"rolled back [^<;]* by rm: checkout broken", release_page)


def test_hold_and_lift_with_reasons_in_the_audit(api, app, browser):
    register(api, 1)
    rm = browser("rm")
    rm.post(f"{STAGING}/hold", {"reason": "investigating"}, from_page=STAGING)
    assert "Held by rm" in rm.get(STAGING).text
    register(api, 2)
    deploy(api, 2, "test")
    verify(api, 2, "test")
    assert soak(app) == []  # held: nothing goes into staging by itself
    rm.post(f"{STAGING}/hold/lift", {"reason": "fixed"}, from_page=STAGING)
    assert "Not held" in rm.get(STAGING).text
    actions = [json.loads(line) for line in rm.get("/ui/audit.jsonl?environment=staging")
               .text.splitlines()]
    assert [(e["action"], (e["after"] or {}).get("reason") or (e["after"] or {}).get("hold"))
            for e in actions[:2]] == [("environment.hold_lifted", "fixed"),
                                      ("environment.hold_set", "investigating")]


def test_promote_and_revoke_from_the_release_page(api, app, browser):
    to_staging(api, app, 1, 101)
    rm = browser("rm")
    refused = rm.post("/ui/releases/1/promotions", {"environment": "production",
                                                    "reason": "release day"},
                      from_page="/ui/releases/1")
    assert refused.status_code == 409 and "0 of 2 approval(s)" in refused.text
    done = rm.post("/ui/images/1/revoke", {"reason": "CVE"}, from_page="/ui/releases/1")
    assert done.headers["Location"] == "/ui/"
    assert "still running: release 1 in test, staging" in rm.get("/ui/").text
    assert "app was revoked: CVE" in rm.get("/ui/releases/1").text


def test_an_emergency_stop_started_and_ended_from_the_overview(api, app, browser):
    register(api, 1)
    rm = browser("rm")
    rm.post("/ui/stops", {"environment": "production", "reason": "incident 7"})
    page = rm.get("/ui/").text
    assert "stopped by rm" in page and "incident 7" in page and "frozen" in page
    stop_id = api.get("/stops").json[0]["id"]
    rm.post(f"/ui/stops/{stop_id}/lift", {"reason": "resolved"})
    assert "None in force." in rm.get("/ui/").text


def test_the_audit_page_filters_shows_the_chain_and_exports(api, app, browser):
    to_staging(api, app, 1, 101)
    alice = browser("alice")
    page = alice.get("/ui/audit").text
    assert "The chain verifies" in page
    filtered = alice.get("/ui/audit?action=image.registered").text
    assert "1 entry" in filtered
    lines = alice.get("/ui/audit.jsonl?actor=ci-bot").text.splitlines()
    entries = [json.loads(line) for line in lines]
    assert entries and {e["actor"] for e in entries} == {"ci-bot"}
    exported = alice.get("/ui/audit.csv?actor=ci-bot")
    assert exported.headers["Content-Disposition"] == 'attachment; filename="audit.csv"'
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [r["hash"] for r in rows] == [e["hash"] for e in entries]
    [registered] = [r for r in rows if r["action"] == "image.registered"]
    assert json.loads(registered["after"])["repository"].endswith("/app")
    assert alice.get("/ui/audit.jsonl?since=2999-01-01T00:00").text == ""


def test_the_dora_page_draws_each_environments_keys(api, app, browser):
    register(api, 1)
    deploy(api, 1, "test")
    verify(api, 1, "test")
    page = browser("alice").get("/ui/dora?days=7&environment=test").text
    assert "last 7 days" in page and page.count("<svg") == 2  # deployments, failure rate
    assert re.search(r"<title>\d{4}-\d\d-\d\d: 1 deployment</title>", page)
    assert "0 %</strong> (0 of 1)" in page
    assert "last 30 days" in browser("alice").get("/ui/dora?days=12345").text


def test_an_images_page_is_its_one_member_release(api, app, browser):
    register(api, 1)
    assert browser("alice").get("/ui/images/1").headers["Location"] == "/ui/releases/1"


def test_the_csv_export_holds_no_cell_a_spreadsheet_would_run_as_a_formula(api, app, browser):
    register(api, 1)
    for n, request_id in enumerate(("=HYPERLINK(\"http://evil.example\")", "+1+1", "-2+3",
                                    "@SUM(A1)")):
        resp = api.post("/stops", json={"environments": [f"qa{n}"], "reason": "drill"},
                        as_="rm", headers={"X-Request-Id": request_id})
        assert resp.status_code == 201
    alice = browser("alice")
    rows = list(csv.DictReader(io.StringIO(alice.get("/ui/audit.csv").text)))
    cells = [cell for row in rows for cell in row.values() if cell]
    assert not [cell for cell in cells if cell[0] in "=+-@\t\r"]
    assert "'=HYPERLINK(\"http://evil.example\")" in [r["request_id"] for r in rows]
    jsonl = [json.loads(line) for line in alice.get("/ui/audit.jsonl").text.splitlines()]
    assert "=HYPERLINK(\"http://evil.example\")" in [e["request_id"] for e in jsonl]  # as given
