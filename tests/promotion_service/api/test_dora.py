"""/api/v1/metrics/dora and the Prometheus gauges, from a history reported through the API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.promotion_service.helpers import deploy, register, verify


def committed(hours: float) -> str:
    return (datetime.now(UTC) - timedelta(hours=hours)).isoformat()


@pytest.fixture
def history(api):
    """In test: image 1 (committed 1 h ago) verified; image 2 (2 h ago) fails its
    verification; image 3's deployment fails; image 4 (30 min ago) verified."""
    register(api, 1, commit_time=committed(1))
    deploy(api, 1, "test")
    verify(api, 1, "test")
    register(api, 2, commit_time=committed(2))
    deploy(api, 2, "test")
    verify(api, 2, "test", passed=False)
    register(api, 3, commit_time=committed(3))
    deploy(api, 3, "test", state="failed")
    register(api, 4, commit_time=committed(0.5))
    deploy(api, 4, "test")
    verify(api, 4, "test")


def test_the_four_keys_per_environment(api, history):
    resp = api.get("/metrics/dora", query_string={"days": 7})
    assert resp.status_code == 200, resp.json
    by_env = {item["environment"]: item for item in resp.json}
    assert set(by_env) == {"test", "staging", "production"}
    test = by_env["test"]
    assert (test["project"], test["deployments"], test["failed_deployments"]) == (
        "group/app", 3, 1)
    assert test["deployments_per_day"] == pytest.approx(3 / 7)
    assert sum(test["per_day"]) == 3 and len(test["per_day"]) == 7
    assert test["change_failure_rate"] == pytest.approx(1 / 3)
    assert test["lead_time_seconds"] == pytest.approx(2700, abs=60)  # median of 1 h and 30 min
    assert test["restores"] == 1 and test["time_to_restore_seconds"] < 60
    assert by_env["production"]["deployments"] == 0
    assert by_env["production"]["lead_time_seconds"] is None


def test_filters_and_scope(api, history):
    only = api.get("/metrics/dora", query_string={"environment": "test", "project": "app"}).json
    assert [i["environment"] for i in only] == ["test"]
    assert api.get("/metrics/dora", as_="ci-other").json == []
    bad = api.get("/metrics/dora", query_string={"days": 0})
    assert bad.status_code == 422 and "days" in bad.json["message"]


def test_prometheus_shows_the_keys(client, history):
    text = client.get("/metrics").text
    assert 'promotion_dora_change_failure_rate{environment="test",project="group/app"} 0.333' \
        in text
    assert 'promotion_dora_deployments_per_day{environment="test",project="group/app"} 0.1' in text
    assert 'promotion_dora_lead_time_seconds{environment="production"' not in text


def test_prometheus_with_a_token_shows_only_the_tokens_projects(app, client, tokens, history):
    app.config["METRICS_AUTH"] = "1"

    def scraped(name):
        resp = client.get("/metrics", headers={"Authorization": f"Bearer {tokens[name]}"})
        assert resp.status_code == 200
        return resp.text

    assert 'project="group/app"' not in scraped("ci-other")
    assert 'promotion_dora_deployments_per_day{environment="test",project="group/app"}' \
        in scraped("ci-bot")
    assert 'project="group/app"' in scraped("rm")  # a token for every project sees every one
