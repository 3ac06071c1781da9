"""Reading GitLab's webhook payloads, verifying their secrets, and what their statuses mean."""

import hashlib
import hmac

import pytest

from promotion_service.domain.gitlab_events import (
    DeploymentEvent,
    DeploymentOutcome,
    EventError,
    JobEvent,
    MergeRequestEvent,
    PipelineEvent,
    PipelineOutcome,
    delivery_keys,
    deployment_outcome,
    link_signature,
    parse_event,
    pipeline_outcome,
    signature_matches,
    token_matches,
)
from tests.promotion_service.gitlab_payloads import (
    SHA,
    deployment_event,
    job_event,
    merge_request_check,
    pipeline_event,
)


@pytest.mark.parametrize(
    ("expected", "given", "ok"),
    [
        ("s3cret", "s3cret", True),
        ("s3cret", "s3cret ", False),
        ("s3cret", "S3CRET", False),
        ("s3cret", "", False),
        ("s3cret", None, False),
        ("", "", False),  # no configured secret never authenticates anyone
        (None, "anything", False),
        ("s3crét", "s3crét", True),
    ],
)
def test_token_matches(expected, given, ok):
    assert token_matches(expected, given) is ok


def test_signature_is_hex_hmac_sha256_of_the_raw_body():
    body = b'{"object_kind":"merge_request"}'
    good = hmac.new(b"shared", body, hashlib.sha256).hexdigest()
    assert signature_matches("shared", body, good)
    assert signature_matches("shared", body, good.upper())
    assert not signature_matches("shared", body + b" ", good)
    assert not signature_matches("other", body, good)
    assert not signature_matches("shared", body, None)
    assert not signature_matches("", body, good)
    assert not signature_matches("shared", body, "sha256=" + good)


def test_delivery_keys_are_the_idempotency_key_and_the_content():
    payload = {"object_kind": "pipeline", "object_attributes": {"id": 1, "status": "running"}}
    keys = delivery_keys({"Idempotency-Key": "k1", "X-Gitlab-Event-UUID": "u"}, "Pipeline Hook",
                         payload)
    assert keys[0] == "idem:k1" and keys[1].startswith("content:")
    # a resend re-encodes the payload: key order does not change the content key
    reordered = {"object_attributes": {"status": "running", "id": 1}, "object_kind": "pipeline"}
    assert delivery_keys({}, "Pipeline Hook", reordered) == keys[1:]
    assert delivery_keys({"X-Gitlab-Event-UUID": "other"}, "Pipeline Hook", payload) == keys[1:]
    # another state, or another event name, is another delivery
    moved_on = {**payload, "object_attributes": {"id": 1, "status": "failed"}}
    assert delivery_keys({}, "Pipeline Hook", moved_on) != keys[1:]
    assert delivery_keys({}, "Job Hook", payload) != keys[1:]


def test_link_signature_binds_project_and_commit_to_the_secret():
    signature = link_signature("s3cret", 42, "a" * 40)
    assert len(signature) == 32 and signature == link_signature("s3cret", 42, "a" * 40)
    assert signature not in {link_signature("other", 42, "a" * 40),
                             link_signature("s3cret", 43, "a" * 40),
                             link_signature("s3cret", 42, "b" * 40)}


def test_pipeline_event_carries_the_promotion_it_was_triggered_for():
    event = parse_event(
        "Pipeline Hook",
        pipeline_event(1000, "running", variables={"CD_PROMOTION_ID": "17", "CD_IMAGE": "r@x"}),
    )
    assert isinstance(event, PipelineEvent)
    assert (event.project_id, event.pipeline_id, event.status) == (42, 1000, "running")
    assert event.promotion_id == 17
    assert event.outcome is PipelineOutcome.RUNNING


def test_pipeline_event_without_the_variable_is_not_ours():
    assert parse_event("Pipeline Hook", pipeline_event(1000, "success")).promotion_id is None


def test_job_event_reads_environment_and_pipeline_not_commit_id():
    event = parse_event("Job Hook", job_event(7, "manual", pipeline_id=1001))
    assert isinstance(event, JobEvent)
    assert (event.job_id, event.pipeline_id, event.environment) == (7, 1001, "production")
    assert event.sha == SHA


def test_deployment_event_takes_full_sha_from_commit_url():
    event = parse_event("Deployment Hook", deployment_event(9, "failed", environment="staging"))
    assert isinstance(event, DeploymentEvent)
    assert (event.sha, event.environment, event.job_id) == (SHA, "staging", 7)
    assert event.username == "qa-lead"
    assert event.outcome is DeploymentOutcome.FAILED


def test_status_check_payload_names_the_check_to_answer():
    event = parse_event(None, merge_request_check(12, check_id=5))
    assert isinstance(event, MergeRequestEvent)
    assert (event.mr_iid, event.sha, event.check_id) == (12, SHA, 5)


@pytest.mark.parametrize("name", ["Push Hook", "Note Hook", "Release Hook", None, "System Hook"])
def test_unknown_events_are_not_parsed(name):
    assert parse_event(name, {"object_kind": "push", "ref": "refs/heads/main"}) is None


@pytest.mark.parametrize(
    ("name", "payload", "message"),
    [
        ("Deployment Hook", [], "JSON object"),
        ("Deployment Hook", {"object_kind": "deployment"}, "'project.id' is missing"),
        (
            "Deployment Hook",
            {**deployment_event(9, "success"), "deployment_id": "nine"},
            "'deployment_id' must be int",
        ),
        ("Pipeline Hook", {**pipeline_event(1, "running"), "object_kind": "build"}, "'build'"),
    ],
)
def test_malformed_payloads_name_the_field(name, payload, message):
    with pytest.raises(EventError, match=message):
        parse_event(name, payload)


def test_status_check_needs_a_real_commit_sha():
    payload = merge_request_check()
    payload["object_attributes"]["last_commit"]["id"] = "main"
    with pytest.raises(EventError, match="40-hex"):
        parse_event("Merge Request Hook", payload)


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        ("created", None),
        ("pending", None),
        ("running", PipelineOutcome.RUNNING),
        ("manual", PipelineOutcome.WAITING),
        ("success", PipelineOutcome.SUCCEEDED),
        ("failed", PipelineOutcome.FAILED),
        ("canceled", PipelineOutcome.FAILED),
        ("skipped", PipelineOutcome.FAILED),
        ("something-new", None),
    ],
)
def test_pipeline_outcomes(status, outcome):
    assert pipeline_outcome(status) is outcome


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        ("created", None),
        ("running", DeploymentOutcome.STARTED),
        ("success", DeploymentOutcome.SUCCEEDED),
        ("failed", DeploymentOutcome.FAILED),
        ("canceled", DeploymentOutcome.FAILED),
        ("blocked", DeploymentOutcome.BLOCKED),
    ],
)
def test_deployment_outcomes(status, outcome):
    assert deployment_outcome(status) is outcome
