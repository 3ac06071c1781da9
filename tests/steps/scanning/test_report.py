import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from steps.scanning.findings import load_report
from steps.scanning.policy import IgnoreRule, Policy, evaluate
from steps.scanning.report import gitlab_report, outputs, service_payload, summary_table
from tests.schemas import container_scanning_validator

DATA = Path(__file__).parents[1] / "data"
# GitLab's published schema (tests/schemas), so the tests need nothing outside the repository.
SCHEMA = container_scanning_validator()
TODAY = date(2026, 11, 26)
START = datetime(2026, 11, 26, 10, 0, 0, tzinfo=UTC)
END = datetime(2026, 11, 26, 10, 0, 7, tzinfo=UTC)
IMAGE = "registry.example.com/team/app@sha256:" + "4b" * 32
REPORTS = ["trivy-debian-python.json", "trivy-secrets-recorded.json",
           "trivy-dockerfile-recorded.json", "grype-debian.json", "trivy-clean.json"]
POLICIES = {
    "high": Policy("HIGH"),
    "critical-fixable": Policy("CRITICAL", fixable_only=True),
    "ignores": Policy("HIGH", ignores=(
        IgnoreRule("CVE-2023-45853", "minizip not built", date(2027, 1, 1)),
        IgnoreRule("CVE-2023-4911", "never setuid", package="libc-bin"),
        IgnoreRule("CVE-2024-6345", "gone soon", date(2026, 1, 1)),
    )),
}


def report_for(name, policy):
    scan = load_report(DATA / name)
    verdict = evaluate(scan.findings, policy, TODAY)
    return scan, verdict, gitlab_report(scan, verdict, IMAGE, START, END, "0.1.0")


@pytest.mark.parametrize("policy", POLICIES, ids=list(POLICIES))
@pytest.mark.parametrize("name", REPORTS)
def test_every_gitlab_report_validates_against_gitlabs_schema(name, policy):
    _, verdict, report = report_for(name, POLICIES[policy])
    SCHEMA.validate(report)
    assert len(report["vulnerabilities"]) == len(verdict.remaining)


def test_gitlab_report_carries_what_the_widget_shows():
    _, _, report = report_for("trivy-debian-python.json", Policy())
    libssl = next(v for v in report["vulnerabilities"]
                  if v["location"]["dependency"]["package"]["name"] == "libssl3")
    assert libssl["severity"] == "Critical"
    assert libssl["identifiers"][0] == {
        "type": "cve", "name": "CVE-2024-5535", "value": "CVE-2024-5535",
        "url": "https://avd.aquasec.com/nvd/cve-2024-5535"}
    assert libssl["solution"] == "Upgrade libssl3 to 3.0.13-1~deb12u1."
    assert libssl["location"]["operating_system"] == "debian 12.5"
    assert libssl["location"]["image"] == IMAGE
    assert libssl["cvss_vectors"][0]["vector"].startswith("CVSS:3.1/")
    assert report["scan"]["start_time"] == "2026-11-26T10:00:00"
    assert report["scan"]["scanner"]["version"] == "0.76.0"


def test_gitlab_report_ids_are_stable_and_unique():
    _, _, first = report_for("trivy-debian-python.json", Policy())
    _, _, again = report_for("trivy-debian-python.json", Policy())
    ids = [v["id"] for v in first["vulnerabilities"]]
    assert len(set(ids)) == len(ids) == 9
    assert ids == [v["id"] for v in again["vulnerabilities"]]


def test_gitlab_report_leaves_ignored_findings_out_and_says_why():
    _, _, report = report_for("trivy-debian-python.json", POLICIES["ignores"])
    packages = [v["location"]["dependency"]["package"]["name"] for v in report["vulnerabilities"]]
    assert "zlib1g" not in packages and "libc-bin" not in packages and "libc6" in packages
    messages = report["scan"]["messages"]
    assert {"level": "info", "value": "CVE-2023-45853 (zlib1g) ignored: minizip not built "
                                      "(until 2027-01-01)"} in messages
    assert any(m["level"] == "warn" and "CVE-2024-6345 expired on 2026-01-01" in m["value"]
               for m in messages)


def test_secrets_reach_the_gitlab_report_without_their_value():
    _, _, report = report_for("trivy-secrets-recorded.json", Policy())
    text = json.dumps(report)
    assert "wJalrXUtnFEMI" not in text and "ghp_" not in text
    secret = next(v for v in report["vulnerabilities"]
                  if v["identifiers"][0]["value"] == "aws-access-key-id")
    assert secret["identifiers"][0]["type"] == "trivy_secret_rule"
    assert secret["location"]["dependency"]["package"]["name"] == "/app/config.env:1"
    assert "rotate" in secret["solution"]


def test_summary_table_counts_lists_top_findings_and_what_was_ignored_and_why():
    scan, verdict, _ = report_for("trivy-debian-python.json", POLICIES["ignores"])
    text = summary_table(scan, verdict, IMAGE, top=3)
    lines = text.splitlines()
    assert lines[0] == f"Scan of {IMAGE} (trivy 0.76.0): FAILED"
    found = next(line for line in lines if line.startswith("found"))
    assert found.split() == ["found", "2", "4", "2", "1", "0"]
    ignored = next(line for line in lines if line.startswith("ignored"))
    assert ignored.split() == ["ignored", "1", "1", "0", "0", "0"]
    assert "Top findings (3 of 7):" in text
    assert "CRITICAL  vuln  CVE-2024-5535" in text
    assert "CRITICAL CVE-2023-45853 zlib1g until 2027-01-01: minizip not built" in text
    assert "CVE-2024-6345 expired on 2026-01-01: 2 finding(s) it matched count again" in text


def test_summary_of_a_clean_scan_says_so():
    scan, verdict, _ = report_for("trivy-clean.json", Policy())
    text = summary_table(scan, verdict, IMAGE)
    assert ": PASSED" in text.splitlines()[0] and "No findings." in text


def test_outputs_and_service_payload_count_what_remains():
    scan, verdict, _ = report_for("trivy-debian-python.json", POLICIES["ignores"])
    out = outputs(scan, verdict, IMAGE)
    assert out["CD_SCAN_RESULT"] == "failed"
    assert (out["CD_SCAN_CRITICAL"], out["CD_SCAN_HIGH"], out["CD_SCAN_IGNORED"]) == (
        "1", "3", "2")
    payload = service_payload(scan, verdict, "registry.example.com/team/app", "sha256:" + "4b" * 32,
                              None)
    assert payload["counts"] == {"critical": 1, "high": 3, "medium": 2, "low": 1, "unknown": 0}
    assert payload["findings"][0]["severity"] == "critical"
