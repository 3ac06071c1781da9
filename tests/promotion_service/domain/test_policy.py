"""The gate's policy evaluation, table-driven (no database)."""

from datetime import datetime, timedelta

import pytest

from promotion_service.domain.policy import (
    Approval,
    EnvironmentPolicy,
    GateFacts,
    MemberFacts,
    PolicyError,
    RolledBack,
    Stop,
    evaluate,
)

NOW = datetime(2026, 11, 26, 12, 0, 0)
PROD = EnvironmentPolicy.from_dict({
    "required_approvals": 2, "four_eyes": True, "approval_ttl": "1d", "min_soak": "1h",
    "max_severity": "medium",
})


MEMBER_FACTS = {"revoked", "revoked_reason", "scan_counts", "scan_findings", "built"}


def facts(**kw):
    """The facts of a one-member release; member facts (revoked, scan_counts...) are its."""
    member = {"scan_counts": {"critical": 0, "high": 0}} | {
        k: kw.pop(k) for k in list(kw) if k in MEMBER_FACTS}
    base = dict(environment="production", now=NOW, previous_environment="staging",
                verified_in_previous_at=NOW - timedelta(hours=2),
                members=(MemberFacts("app", "sha256:" + "ab" * 32, **member),),
                image_authors=frozenset({"carol"}),
                approvals=(approval("alice"), approval("bob")))
    return GateFacts(**(base | kw))


def approval(actor, role="approver", decision="approve", at=NOW - timedelta(hours=1),
             expires=None, comment=""):
    return Approval(actor, role, decision, at, expires, comment)


def codes(decision):
    return [r.code for r in decision.reasons]


@pytest.mark.parametrize(("change", "expected"), [
    ({}, []),
    ({"revoked": True, "revoked_reason": "CVE"}, ["revoked"]),
    ({"verified_in_previous_at": None}, ["not_verified"]),
    ({"verified_in_previous_at": NOW - timedelta(minutes=20)}, ["soak_time"]),
    ({"scan_counts": None}, ["scan_missing"]),
    ({"scan_counts": {"high": 1}}, ["scan_failed"]),
    ({"scan_counts": {"medium": 5, "low": 9}}, []),
    ({"approvals": (approval("alice"),)}, ["approvals_missing"]),
    ({"approvals": (approval("alice"), approval("carol"))}, ["approvals_missing"]),
    ({"approvals": (approval("alice"), approval("bob", role="ci"))}, ["approvals_missing"]),
    ({"approvals": (approval("alice"), approval("bob", at=NOW - timedelta(days=2)))},
     ["approvals_missing"]),
    ({"approvals": (approval("alice"), approval("bob", expires=NOW))}, ["approvals_missing"]),
    ({"approvals": (approval("alice"), approval("bob"), approval("rm", decision="reject"))},
     ["rejected"]),
    ({"stops": (Stop("incident", "rm", NOW),)}, ["emergency_stop"]),
    ({"revoked": True, "approvals": ()}, ["revoked", "approvals_missing"]),
])
def test_gate_reasons(change, expected):
    assert codes(evaluate(PROD, facts(**change))) == expected


def test_a_rollback_only_checks_revocation():
    rollback = facts(approvals=(), verified_in_previous_at=None, rollback=True)
    assert evaluate(PROD, rollback).allowed
    assert codes(evaluate(PROD, facts(rollback=True, revoked=True))) == ["revoked"]


def test_a_release_rolled_back_out_of_an_earlier_environment_is_refused_naming_it():
    gone = RolledBack("staging", NOW - timedelta(minutes=5), "rm", "checkout broken")
    [reason] = evaluate(PROD, facts(rolled_back=gone)).reasons
    assert reason.code == "rolled_back"
    assert reason.message == ("the release was rolled back out of staging at "
                              "2026-11-26T11:55:00Z by rm: checkout broken")
    assert "roll this one forward in staging" in reason.satisfy
    assert reason.details == {"environment": "staging", "at": "2026-11-26T11:55:00Z",
                              "by": "rm"}
    # a rollback goes to a release verified in its own environment: not this rule's concern
    assert evaluate(PROD, facts(rolled_back=gone, rollback=True)).allowed


def test_soak_reason_says_how_long_is_left_and_until_when():
    [reason] = evaluate(PROD, facts(verified_in_previous_at=NOW - timedelta(minutes=20))).reasons
    assert "40m left" in reason.message
    assert reason.satisfy == "wait until 2026-11-26T12:40:00Z"


def test_freeze_window_reason_gives_its_end():
    policy = EnvironmentPolicy.from_dict({"freeze_windows": [
        {"start": "2026-11-26T00:00:00Z", "end": "2026-11-27T00:00:00+00:00", "reason": "sale"}]})
    [reason] = evaluate(policy, facts()).reasons
    assert (reason.code, reason.details["until"]) == ("freeze_window", "2026-11-27T00:00:00Z")
    assert evaluate(policy, facts(now=datetime(2026, 11, 27))).allowed


@pytest.mark.parametrize(("doc", "message"), [
    ({"required_approvals": -1}, "required_approvals"),
    ({"approver_roles": ["ci"]}, "approver_roles"),
    ({"max_severity": "severe"}, "max_severity: expected one of none, low"),
    ({"min_soak": "a while"}, "min_soak: expected a duration"),
    ({"auto_promote": "yes"}, "auto_promote: expected true or false"),
    ({"freeze_windows": [{"start": "2026-01-02", "end": "2026-01-01"}]}, "end must be after"),
    ({"colour": "blue"}, "unknown key(s) colour"),
])
def test_bad_policies_name_the_field(doc, message):
    with pytest.raises(PolicyError, match=message.replace("(", r"\(").replace(")", r"\)")):
        EnvironmentPolicy.from_dict(doc)


def test_policy_round_trips_through_its_stored_form():
    assert EnvironmentPolicy.from_dict(PROD.to_dict()) == PROD


def test_reasons_name_the_member_at_fault_in_a_release_of_several_images():
    worker = "sha256:1234abcd5678" + "0" * 52
    release = facts(members=(
        MemberFacts("api", "sha256:" + "ab" * 32, scan_counts={"high": 0}),
        MemberFacts("worker", worker, scan_counts={"critical": 2}),
        MemberFacts("db", "sha256:" + "cd" * 32, built=False),  # third-party: no scan needed
    ))
    [reason] = evaluate(PROD, release).reasons
    assert reason.code == "scan_failed" and reason.details["member"] == "worker"
    assert reason.message.startswith("worker@sha256:1234abcd5678 has 2 critical finding(s)")


def test_a_revoked_member_refuses_the_whole_release_naming_it():
    release = facts(members=(
        MemberFacts("api", "sha256:" + "ab" * 32, scan_counts={}),
        MemberFacts("worker", "sha256:" + "ef" * 32, scan_counts={}, revoked=True,
                    revoked_reason="CVE-2026-9"),
    ))
    [reason] = evaluate(PROD, release).reasons
    assert reason.code == "revoked"
    assert reason.message == "worker@sha256:efefefefefef was revoked: CVE-2026-9"
