"""The overview's candidates: each cell's reasons are the gate's answer for that release and
environment, and a page reads them in the same number of SQL statements however many
projects it shows."""

from __future__ import annotations

import html
import re
from typing import Any

from promotion_service.db.models import Verification
from tests.promotion_service.helpers import SOAKED, age, digest, record_id, sent_statements

REASONS = re.compile(r'<span class="reasons[^"]*">(.*?)</span>', re.S)


def staging_candidate(api: Any, k: int) -> dict[str, str]:
    """Project group/app-k whose release k (with k critical findings) is verified in test
    and approved for staging by alice: staging's candidate."""
    image = {"repository": f"registry.example.com/group/app-{k}", "digest": digest(k)}
    registered = api.post("/images", json=image | {"project": f"group/app-{k}",
                                                   "commit_sha": "ab" * 20}, as_="admin")
    assert registered.status_code == 201, registered.json
    assert api.post("/scans", json=image | {"counts": {"critical": k, "high": 0}},
                    as_="admin").status_code == 201
    for path, body in (("/deployments", {"state": "succeeded", "record_id": record_id(k)}),
                       ("/verifications", {"passed": True})):
        resp = api.post(path, json=image | {"environment": "test"} | body, as_="admin")
        assert resp.status_code == 201, resp.json
    approved = api.post("/approvals", json=image | {"environment": "staging",
                                                    "decision": "approve"}, as_="alice")
    assert approved.status_code == 201, approved.json
    return image


def overview_statements(app: Any, browser: Any) -> tuple[str, int]:
    """The overview's page as the release manager sees it, and the SQL statements it sent."""
    rm = browser("rm")
    with sent_statements(app) as sent:
        page = rm.get("/ui/")
    assert page.status_code == 200
    return page.text, len(sent)


def test_each_cells_reasons_are_the_gates_answer(api, app, browser):
    images = [staging_candidate(api, k) for k in (1, 2)]
    age(app, Verification, SOAKED)  # what the page and the gate say does not change meanwhile
    assert api.post("/stops", json={"environments": ["staging"], "reason": "drill"},
                    as_="rm").status_code == 201
    page = browser("rm").get("/ui/").text
    shown = [html.unescape(line).strip() for line in REASONS.findall(page)]
    for image in images:  # the stop and the critical findings, one line per project
        answer = api.get("/gate", query_string=image | {"environment": "staging"},
                         as_="rm").json
        assert not answer["allowed"]
        gate_line = "; ".join(reason["message"] for reason in answer["reasons"])
        assert "drill" in gate_line and "critical" in gate_line, gate_line
        assert gate_line in shown, (gate_line, shown)
    assert len(shown) == 2


def test_the_overview_sends_as_many_statements_for_one_project_as_for_four(api, app,
                                                                           browser):
    staging_candidate(api, 1)
    assert api.post("/stops", json={"environments": ["staging"], "reason": "drill"},
                    as_="rm").status_code == 201
    one_page, one = overview_statements(app, browser)
    for k in (2, 3, 4):
        staging_candidate(api, k)
    four_page, four = overview_statements(app, browser)
    assert one_page.count('class="candidate"') == 1 and four_page.count('class="candidate"') == 4
    assert four == one, f"{one} statements for one project, {four} for four"
