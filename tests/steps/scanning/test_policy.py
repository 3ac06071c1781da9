from datetime import date
from pathlib import Path

import pytest

from steps.scanning.findings import SECRET, Finding, load_report
from steps.scanning.policy import (
    IgnoreRule,
    Policy,
    PolicyError,
    evaluate,
    load_ignore_file,
    parse_ignore_rules,
)

DATA = Path(__file__).parents[1] / "data"
TODAY = date(2026, 11, 26)
# The recorded report: CRITICAL libssl3 (fixed), zlib1g (unfixed); HIGH libc6, libc-bin (fixed,
# same CVE), setuptools twice (fixed, two paths); MEDIUM libtinfo6 (unfixed), requests (fixed);
# LOW apt (unfixed).
FINDINGS = load_report(DATA / "trivy-debian-python.json").findings
SECRET_FINDING = Finding(id="github-pat", type=SECRET, severity="CRITICAL",
                         title="GitHub Personal Access Token", target="/app/.env",
                         path="/app/.env", line=3)


def failing(policy, findings=FINDINGS):
    return sorted((f.id, f.package) for f in evaluate(findings, policy, TODAY).failing)


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (Policy("CRITICAL"), [("CVE-2023-45853", "zlib1g"), ("CVE-2024-5535", "libssl3")]),
        (Policy("CRITICAL", fixable_only=True), [("CVE-2024-5535", "libssl3")]),
        (Policy("HIGH"), [("CVE-2023-45853", "zlib1g"), ("CVE-2023-4911", "libc-bin"),
                          ("CVE-2023-4911", "libc6"), ("CVE-2024-5535", "libssl3"),
                          ("CVE-2024-6345", "setuptools"), ("CVE-2024-6345", "setuptools")]),
        (Policy("HIGH", fixable_only=True),
         [("CVE-2023-4911", "libc-bin"), ("CVE-2023-4911", "libc6"),
          ("CVE-2024-5535", "libssl3"), ("CVE-2024-6345", "setuptools"),
          ("CVE-2024-6345", "setuptools")]),
        (Policy("MEDIUM", fixable_only=True),
         [("CVE-2023-4911", "libc-bin"), ("CVE-2023-4911", "libc6"),
          ("CVE-2024-35195", "requests"), ("CVE-2024-5535", "libssl3"),
          ("CVE-2024-6345", "setuptools"), ("CVE-2024-6345", "setuptools")]),
        (Policy("NONE"), []),
    ],
    ids=["critical", "critical-fixable", "high", "high-fixable", "medium-fixable", "none"],
)
def test_threshold_and_fixable_only_decide_what_fails(policy, expected):
    assert failing(policy) == expected


def test_low_threshold_fails_on_everything_found():
    verdict = evaluate(FINDINGS, Policy("LOW"), TODAY)
    assert len(verdict.failing) == len(FINDINGS) == 9
    assert not verdict.passed
    assert verdict.counts() == {"CRITICAL": 2, "HIGH": 4, "MEDIUM": 2, "LOW": 1, "UNKNOWN": 0}


def test_the_most_severe_findings_come_first():
    verdict = evaluate(FINDINGS, Policy("LOW"), TODAY)
    assert [f.severity for f in verdict.remaining][:2] == ["CRITICAL", "CRITICAL"]
    assert verdict.remaining[-1].severity == "LOW"


def test_a_secret_fails_whatever_the_threshold_unless_allowed():
    assert failing(Policy("NONE"), [SECRET_FINDING]) == [("github-pat", "")]
    verdict = evaluate([SECRET_FINDING], Policy("NONE", allow_secrets=True), TODAY)
    assert verdict.passed and verdict.remaining == (SECRET_FINDING,)
    assert "secret(s) found" in evaluate([SECRET_FINDING], Policy(), TODAY).reasons()[0]


def test_an_ignore_entry_without_expiry_ignores_for_good_and_keeps_its_reason():
    rule = IgnoreRule("CVE-2023-45853", "minizip is not built into zlib1g on Debian")
    verdict = evaluate(FINDINGS, Policy("CRITICAL", ignores=(rule,)), TODAY)
    assert failing(Policy("CRITICAL", ignores=(rule,))) == [("CVE-2024-5535", "libssl3")]
    assert [(i.finding.package, i.rule.reason) for i in verdict.ignored] == [
        ("zlib1g", "minizip is not built into zlib1g on Debian")]
    assert verdict.counts()["CRITICAL"] == 1  # ignored findings are not counted as remaining


@pytest.mark.parametrize(
    ("expires", "ignored"),
    [(date(2027, 1, 31), True), (TODAY, True), (date(2026, 11, 25), False)],
    ids=["future", "today-is-the-last-day", "yesterday"],
)
def test_an_ignore_entry_works_through_its_expiry_date_and_not_after(expires, ignored):
    rule = IgnoreRule("CVE-2024-5535", "no TLS client in this image", expires=expires)
    verdict = evaluate(FINDINGS, Policy("CRITICAL", ignores=(rule,)), TODAY)
    assert (("CVE-2024-5535", "libssl3") not in failing(Policy("CRITICAL", ignores=(rule,)))) \
        == ignored
    if ignored:
        assert not verdict.expired
    else:
        assert [(e.rule.id, len(e.would_ignore)) for e in verdict.expired] == [
            ("CVE-2024-5535", 1)]
        assert not verdict.ignored


def test_an_ignore_scoped_to_a_package_leaves_the_same_cve_elsewhere():
    rule = IgnoreRule("CVE-2023-4911", "ld.so is never setuid here", package="libc-bin")
    result = failing(Policy("HIGH", ignores=(rule,)))
    assert ("CVE-2023-4911", "libc6") in result
    assert ("CVE-2023-4911", "libc-bin") not in result


def test_an_ignore_scoped_to_a_path_leaves_the_same_package_elsewhere():
    rule = IgnoreRule("CVE-2024-6345", "the venv is build-time only", path="opt/venv/*")
    verdict = evaluate(FINDINGS, Policy("HIGH", ignores=(rule,)), TODAY)
    assert [i.finding.path.split("/")[0] for i in verdict.ignored] == ["opt"]
    assert [f.path.split("/")[0] for f in verdict.failing if f.package == "setuptools"] == [
        "usr"]


def test_a_path_scope_matches_a_secret_file_with_or_without_leading_slash():
    for pattern in ("/app/.env", "app/*"):
        rule = IgnoreRule("github-pat", "test fixture token, revoked", path=pattern)
        assert evaluate([SECRET_FINDING], Policy(ignores=(rule,)), TODAY).passed


def test_an_entry_that_matches_nothing_is_reported_as_unused():
    rule = IgnoreRule("CVE-1999-0001", "long fixed")
    assert evaluate(FINDINGS, Policy(ignores=(rule,)), TODAY).unused == (rule,)


def test_ignore_file_is_read_with_dates_and_scopes(tmp_path):
    path = tmp_path / ".docker-cd-ignore.yml"
    path.write_text(
        "ignore:\n"
        "  - id: CVE-2023-45853\n"
        "    reason: minizip is not built\n"
        "    expires: 2027-01-31\n"
        "    package: zlib1g\n"
        "  - id: github-pat\n"
        "    reason: revoked test token\n"
        "    path: /app/.env\n"
        "    expires: '2026-12-01'\n")
    rules = load_ignore_file(path)
    assert rules == (
        IgnoreRule("CVE-2023-45853", "minizip is not built", date(2027, 1, 31), "zlib1g"),
        IgnoreRule("github-pat", "revoked test token", date(2026, 12, 1), None, "/app/.env"))


def test_an_empty_ignore_file_ignores_nothing(tmp_path):
    (tmp_path / "i.yml").write_text("# nothing accepted yet\n")
    assert load_ignore_file(tmp_path / "i.yml") == ()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([{"id": "CVE-1"}], "expected a mapping with one key, 'ignore'"),
        ({"ignore": {"id": "CVE-1"}}, "'ignore' must be a list"),
        ({"ignore": ["CVE-1"]}, "ignore[0]: expected a mapping"),
        ({"ignore": [{"id": "CVE-1"}]}, "ignore[0] (CVE-1): 'reason' is required"),
        ({"ignore": [{"reason": "x"}]}, "ignore[0]: 'id' is required"),
        ({"ignore": [{"id": "CVE-1", "reason": "x", "expiry": "2027-01-01"}]},
         "unknown key(s) expiry"),
        ({"ignore": [{"id": "CVE-1", "reason": "x", "expires": "next year"}]},
         "'expires' must be a date like 2027-01-31; got 'next year'"),
        ({"ignore": [{"id": "CVE-1", "reason": "x", "package": ""}]}, "'package' is empty"),
    ],
)
def test_a_wrong_ignore_entry_names_the_entry_and_the_key(data, message):
    with pytest.raises(PolicyError) as e:
        parse_ignore_rules(data, ".docker-cd-ignore.yml")
    assert message in str(e.value)
    assert str(e.value).startswith(".docker-cd-ignore.yml")


def test_an_ignore_file_that_is_not_yaml_is_named(tmp_path):
    (tmp_path / "i.yml").write_text("ignore: [\n")
    with pytest.raises(PolicyError, match="is not valid YAML"):
        load_ignore_file(tmp_path / "i.yml")
