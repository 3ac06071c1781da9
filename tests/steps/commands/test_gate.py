"""`docker-cd gate` against the real promotion service: exit 0 allowed, 1 refused with reasons;
and against a fake of its client, for what the gate asks and how it reads the answers."""

from __future__ import annotations

import pytest

from docker_cd_local.service import PromotionService
from steps.cli import run
from steps.commands import gate
from steps.commands.inputs.pipeline import Pipeline
from steps.commands.inputs.service import Service
from steps.runtime.errors import Refused
from tests.steps.commands.fake_service import FakeService, context

REPO = "registry.example.com/demo/gate-app"
GOOD_SHA, BAD_SHA, LATE_SHA = "a1" * 20, "b2" * 20, "c3" * 20


def digest(n: int) -> str:
    return "sha256:" + f"{n:02x}" * 32


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    svc = PromotionService.start(tmp_path_factory.mktemp("gate-service"))
    ref = {"repository": REPO, "digest": digest(1)}
    svc.api("POST", "images", role="ci", json={**ref, "project": "demo/gate-app",
                                                "commit_sha": GOOD_SHA})
    svc.api("POST", "scans", role="ci", json={**ref, "counts": {"critical": 0, "high": 0}})
    bad = {"repository": REPO, "digest": digest(2)}
    svc.api("POST", "images", role="ci", json={**bad, "project": "demo/gate-app",
                                                "commit_sha": BAD_SHA})
    svc.api("POST", "scans", role="ci", json={
        **bad, "counts": {"critical": 1, "high": 0},
        "findings": [{"id": "CVE-2026-4242", "severity": "critical", "package": "openssl"}]})
    yield svc
    svc.stop()


def env(service, **extra):
    return {"CD_SERVICE_URL": service.url, "CD_SERVICE_TOKEN": service.tokens["ci"],
            "CI_PROJECT_PATH": "demo/gate-app", **extra}


def test_merge_request_gate_allows_a_good_image(service, capsys):
    assert run(["gate"], env(service, CI_COMMIT_SHA=GOOD_SHA)) == 0
    err = capsys.readouterr().err
    assert "The gate allows the merge of demo/gate-app at a1a1a1a1a1a1" in err
    assert service.tokens["ci"] not in err


def test_merge_request_gate_refuses_a_failed_scan_with_its_reasons(service, capsys):
    assert run(["gate"], env(service, CI_COMMIT_SHA=BAD_SHA)) == 1
    err = capsys.readouterr().err
    assert "1 critical" in err and "CVE-2026-4242" in err
    assert "to satisfy: fix the findings" in err
    assert err.rstrip().splitlines()[-1].startswith("Error: the gate refused the merge")


def test_merge_request_gate_refuses_while_no_image_is_registered(service, capsys):
    assert run(["gate"], env(service, CI_COMMIT_SHA=LATE_SHA)) == 1
    assert "no image is registered for commit c3c3c3c3c3c3" in capsys.readouterr().err


def test_deploy_gate_refuses_what_policy_forbids(service, capsys):
    code = run(["gate", f"{REPO}@{digest(1)}", "--environment", "staging"], env(service))
    assert code == 1
    assert "has not passed verification in test" in capsys.readouterr().err


def test_a_second_pipeline_of_the_same_promotion_cannot_deploy(service, capsys):
    ref = {"repository": REPO, "digest": digest(1)}
    service.api("POST", "deployments", role="ci", json={**ref, "environment": "test",
                                                         "state": "succeeded"})
    service.api("POST", "verifications", role="ci", json={**ref, "environment": "test",
                                                           "passed": True})
    [promotion] = service.api("GET", "promotions", params={"environment": "staging"})
    image = f"{REPO}@{digest(1)}"
    triggered = env(service, CD_IMAGE=image, CD_TARGET_ENVIRONMENT="staging",
                    CD_PROMOTION_ID=str(promotion["id"]))
    # asking (a job without --claim, e.g. gate-staging) takes nothing from the real pipeline
    assert run(["gate"], {**triggered, "CI_PIPELINE_ID": "499"}) == 0
    assert run(["gate", "--claim"], {**triggered, "CI_PIPELINE_ID": "501"}) == 0
    assert run(["gate", "--claim"], {**triggered, "CI_PIPELINE_ID": "501"}) == 0  # retried
    capsys.readouterr()
    assert run(["gate", "--claim"], {**triggered, "CI_PIPELINE_ID": "502"}) == 1
    assert "being deployed by pipeline 501, not 502" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "extra", "message"), [
    (["gate"], {"CD_SERVICE_URL": ""}, "set CD_SERVICE_URL"),
    (["gate"], {"CI_COMMIT_SHA": "a1b2c3"}, "--commit-sha (from CI_COMMIT_SHA): the merge-request"
                                            " gate needs the full 40-hex commit SHA"),
    (["gate", "--environment", "staging", f"{REPO}:v1"], {}, "needs the image by digest"),
    (["gate", "--wait", "-1"], {"CI_COMMIT_SHA": GOOD_SHA}, "must be 0 or more seconds"),
    (["gate", "--claim"], {"CI_COMMIT_SHA": GOOD_SHA}, "--claim (from --claim): a claim "
                                                       "is for an environment"),
])
def test_usage_errors_name_the_option(service, capsys, argv, extra, message):
    assert run(argv, {**env(service), **extra}) == 2
    assert message in capsys.readouterr().err


def test_a_refused_token_is_a_usage_error(service, capsys):
    assert run(["gate"], env(service, CI_COMMIT_SHA=GOOD_SHA, CD_SERVICE_TOKEN="pst_1_nope")) == 2
    assert "CD_SERVICE_TOKEN" in capsys.readouterr().err


def test_wait_asks_again_until_the_image_and_its_scan_are_recorded(service, capsys,
                                                                    monkeypatch):
    import threading

    monkeypatch.setattr(gate, "POLL_SECONDS", 0.2)
    ref = {"repository": REPO, "digest": digest(3)}

    def pipeline_finishes_its_scan():
        service.api("POST", "images", role="ci", json={**ref, "project": "demo/gate-app",
                                                        "commit_sha": "d4" * 20})
        service.api("POST", "scans", role="ci", json={**ref, "counts": {"critical": 0}})

    later = threading.Timer(1.0, pipeline_finishes_its_scan)
    later.start()
    try:
        code = run(["gate", "--wait", "30"], env(service, CI_COMMIT_SHA="d4" * 20))
    finally:
        later.join()
    assert code == 0
    err = capsys.readouterr().err
    assert "Not ready yet" in err and "The gate allows" in err


# --- with a hand-written fake of the service's client: what the gate asks, how it reads it ---

FAKE = Service(service_url="http://service.test")
IMAGE = f"{REPO}@{digest(7)}"


def test_a_deploy_job_claims_its_promotion_for_its_pipeline():
    fake = FakeService({"allowed": True, "promotion": {"id": 7, "kind": "approval"},
                        "hold": None})
    settings = gate.Settings(image=IMAGE, environment="production", promotion_id=7, claim=True,
                             job_url="https://gitlab.example.com/job/9",
                             pipeline=Pipeline(pipeline_id="501"), service=FAKE)
    ctx, log = context(fake)
    result = gate.execute(settings, ctx)
    assert fake.requests == [("POST", "claims", {
        "kind": "deploy", "repository": REPO, "digest": digest(7), "environment": "production",
        "promotion_id": 7, "pipeline_id": 501, "job_url": "https://gitlab.example.com/job/9"})]
    assert result.outputs == {"CD_GATE": "allowed", "CD_PROMOTION_ID": "7"}
    assert f"the gate allows the {IMAGE} into production" in log.getvalue()


def test_an_old_deploy_job_run_again_says_it_rolls_back_and_names_the_hold():
    hold = {"reason": "rollback to image 1", "by": "alice", "since": "2026-11-26T16:00:00Z",
            "lift": "a release-manager lifts it"}
    fake = FakeService({"allowed": True, "promotion": {"id": 12, "kind": "rollback"},
                        "hold": hold})
    settings = gate.Settings(image=IMAGE, environment="production", promotion_id=7, claim=True,
                             pipeline=Pipeline(pipeline_id="501"), service=FAKE)
    ctx, log = context(fake)
    assert gate.execute(settings, ctx).outputs["CD_PROMOTION_ID"] == "12"
    assert "This pipeline deploys rollback 12" in log.getvalue()
    assert "production is held: rollback to image 1 (by alice" in log.getvalue()


def test_waiting_stops_at_the_first_answer_that_is_a_real_no(monkeypatch):
    monkeypatch.setattr(gate, "POLL_SECONDS", 0.0)
    not_ready = {"allowed": False, "reasons": [{"code": "scan_missing", "message": "no scan"}]}
    no = {"allowed": False, "reasons": [{"code": "scan_failed", "message": "1 critical",
                                         "satisfy": "fix the findings"}]}
    fake = FakeService(not_ready, not_ready, no, {"allowed": True})
    settings = gate.Settings(wait=30, pipeline=Pipeline(commit_sha=GOOD_SHA,
                                                        project_path="demo/gate-app"),
                             service=FAKE)
    ctx, log = context(fake)
    with pytest.raises(Refused) as refused:
        gate.execute(settings, ctx)
    assert [path for _, path, _ in fake.requests] == ["merge-request-checks/gate"] * 3
    assert refused.value.reasons == ["1 critical (to satisfy: fix the findings)"]
    assert log.getvalue().count("Not ready yet: no scan; asking again") == 2
