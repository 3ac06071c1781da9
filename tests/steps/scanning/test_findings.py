import json
from pathlib import Path

import pytest

from steps.scanning.findings import (
    MISCONFIGURATION,
    SECRET,
    VULNERABILITY,
    ReportFormatError,
    load_report,
    parse_report,
)

DATA = Path(__file__).parents[1] / "data"


def by_key(result):
    return {(f.id, f.package, f.path): f for f in result.findings}


def test_trivy_vulnerabilities_keep_package_versions_layer_and_location():
    scan = load_report(DATA / "trivy-debian-python.json")
    assert (scan.scanner, scan.scanner_version, scan.os) == ("trivy", "0.76.0", "debian 12.5")
    assert len(scan.findings) == 9
    assert all(f.type == VULNERABILITY for f in scan.findings)
    libssl = next(f for f in scan.findings if f.package == "libssl3")
    assert (libssl.id, libssl.severity, libssl.installed_version, libssl.fixed_version) == (
        "CVE-2024-5535", "CRITICAL", "3.0.11-1~deb12u2", "3.0.13-1~deb12u1")
    assert libssl.fixable and libssl.layer.startswith("sha256:9853")
    assert libssl.location.endswith("(debian 12.5)")
    zlib = next(f for f in scan.findings if f.package == "zlib1g")
    assert not zlib.fixable and zlib.status == "will_not_fix"
    setuptools = [f for f in scan.findings if f.package == "setuptools"]
    assert sorted(f.location for f in setuptools) == [
        "opt/venv/lib/python3.12/site-packages/setuptools-68.0.0.dist-info/METADATA",
        "usr/local/lib/python3.12/site-packages/setuptools-68.0.0.dist-info/METADATA"]


def test_trivy_cvss_vector_of_the_severity_source_comes_first():
    scan = load_report(DATA / "trivy-debian-python.json")
    libc6 = next(f for f in scan.findings if f.package == "libc6")
    assert libc6.cvss[0] == ("nvd", "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H")


def test_a_secret_finding_never_holds_the_secret_or_its_neighbouring_lines():
    # The recorded report's Code lines hold the AWS secret key unmasked, next to the key id.
    raw = (DATA / "trivy-secrets-recorded.json").read_text()
    assert "wJalrXUtnFEMI" in raw
    scan = load_report(DATA / "trivy-secrets-recorded.json")
    secrets = [f for f in scan.findings if f.type == SECRET]
    assert {f.id for f in secrets} == {"aws-access-key-id", "github-pat"}
    assert "wJalrXUtnFEMI" not in repr(scan.findings)
    in_file = next(f for f in secrets if f.id == "aws-access-key-id")
    assert (in_file.location, in_file.severity) == ("/app/config.env:1", "CRITICAL")
    assert "COPY" in in_file.layer_created_by
    # The token in ENV shows twice in the image config (Env and history): one finding.
    in_config = [f for f in secrets if f.path == "image config"]
    assert [(f.id, f.location, f.line) for f in in_config] == [
        ("github-pat", "image config", None)]


def test_the_same_secret_reported_twice_at_one_place_counts_once():
    data = json.loads((DATA / "trivy-secrets-recorded.json").read_text())
    result = data["Results"][0]
    data["Results"].append(result)
    assert len(parse_report(data).findings) == len(load_report(
        DATA / "trivy-secrets-recorded.json").findings)


def test_dockerfile_misconfigurations_only_failures():
    scan = load_report(DATA / "trivy-dockerfile-recorded.json")
    assert {(f.id, f.severity, f.type) for f in scan.findings} == {
        ("DS-0002", "HIGH", MISCONFIGURATION), ("DS-0026", "LOW", MISCONFIGURATION)}
    root = next(f for f in scan.findings if f.id == "DS-0002")
    assert "USER" in root.description and root.url.startswith("https://")


def test_grype_report_maps_into_the_same_model():
    scan = load_report(DATA / "grype-debian.json")
    assert (scan.scanner, scan.scanner_version, scan.os) == ("grype", "0.74.7", "debian 12")
    found = by_key(scan)
    libc = found[("CVE-2023-4911", "libc6", "usr/share/doc/libc6/copyright")]
    assert (libc.severity, libc.fixed_version, libc.installed_version) == (
        "HIGH", "2.36-9+deb12u3", "2.36-9+deb12u1")
    apt = next(f for f in scan.findings if f.package == "apt")
    assert apt.severity == "LOW" and not apt.fixable  # Grype's "Negligible"
    assert scan.repo_digests[0].startswith("registry.example.com/team/app@sha256:")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "is not JSON"),
        ('{"SchemaVersion": 1, "Results": []}', "SchemaVersion 1 is not supported"),
        ('{"SchemaVersion": 2, "Results": {}}', "Results must be a list"),
        ('{"SchemaVersion": 2, "Results": [{"Vulnerabilities": [{"Severity": "HIGH"}]}]}',
         "needs VulnerabilityID and PkgName"),
        ('{"bomFormat": "CycloneDX"}', "neither a Trivy JSON report"),
        ('{"matches": [{"vulnerability": {}}]}', "matches[0] needs vulnerability.id"),
    ],
)
def test_a_report_that_is_not_what_it_claims_is_named_with_the_problem(tmp_path, content,
                                                                       message):
    path = tmp_path / "report.json"
    path.write_text(content)
    with pytest.raises(ReportFormatError, match=message.replace("[", r"\[")):
        load_report(path)


def test_a_missing_report_is_a_clear_error(tmp_path):
    with pytest.raises(ReportFormatError, match="cannot read"):
        load_report(tmp_path / "nope.json")
