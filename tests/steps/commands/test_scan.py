"""The scan step's CLI on recorded reports (--from-report): exit codes, `Error:` lines, outputs.

Real trivy runs on real images are in test_scan_trivy.py.
"""

import json
from pathlib import Path

import pytest

from steps.cli import run
from tests.schemas import container_scanning_validator
from tests.support import read_dotenv

DATA = Path(__file__).parents[1] / "data"
REPORT = str(DATA / "trivy-debian-python.json")
SCHEMA = container_scanning_validator()
DIGEST = "sha256:4b2c1c8e0f0b2e0a9d1f6a1a8e3c2b7d6f5e4a3b2c1d0e9f8a7b6c5d4e3f2a1b"
IMAGE = f"registry.example.com/team/app@{DIGEST}"


def scan(argv, env=None):
    return run(["scan", *argv], env or {})


def test_findings_at_the_threshold_fail_with_reasons_and_still_write_every_output(workdir,
                                                                                  capsys):
    code = scan(["--from-report", REPORT, "--gitlab-report", "gl.json", "--dotenv", "scan.env",
                 "--json", "scan.json"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.splitlines()[-1] == f"Error: the scan policy failed for {IMAGE}"
    assert "  - 6 finding(s) at or above HIGH (2 CRITICAL, 4 HIGH" in err
    assert "Top findings" in err
    out = read_dotenv("scan.env")
    assert (out["CD_SCAN_RESULT"], out["CD_SCAN_CRITICAL"], out["CD_SCAN_FAILING"]) == (
        "failed", "2", "6")
    assert out["CD_SCAN_IMAGE"] == IMAGE
    SCHEMA.validate(json.loads(Path("gl.json").read_text()))
    details = json.loads(Path("scan.json").read_text())["scan"]
    assert details["passed"] is False and len(details["findings"]) == 9


def test_below_the_threshold_passes(workdir, capsys):
    code = scan(["--from-report", REPORT, "--severity-threshold", "NONE", "--dotenv", "s.env",
                 "--gitlab-report", "gl.json"])
    assert code == 0
    assert read_dotenv("s.env")["CD_SCAN_RESULT"] == "passed"
    assert f"The scan policy passed for {IMAGE}." in capsys.readouterr().err
    assert len(json.loads(Path("gl.json").read_text())["vulnerabilities"]) == 9


def test_variables_set_the_policy_and_the_ignore_file_accepts_the_rest(workdir, capsys):
    Path("accepted.yml").write_text(
        "ignore:\n"
        "  - id: CVE-2024-5535\n"
        "    reason: no TLS client in this image\n"
        "    expires: 2999-12-31\n"
        "    package: libssl3\n")
    code = scan(["--from-report", REPORT, "--dotenv", "s.env"],
                {"CD_SCAN_SEVERITY_THRESHOLD": "critical", "CD_SCAN_FIXABLE_ONLY": "true",
                 "CD_SCAN_IGNORE_FILE": "accepted.yml"})
    err = capsys.readouterr().err
    assert code == 0, err
    assert "CVE-2024-5535 libssl3 until 2999-12-31: no TLS client in this image" in err
    assert read_dotenv("s.env")["CD_SCAN_IGNORED"] == "1"


def test_the_default_ignore_file_is_read_and_an_expired_entry_ignores_nothing(workdir, capsys):
    Path(".docker-cd-ignore.yml").write_text(
        "ignore:\n"
        "  - {id: CVE-2024-5535, reason: waiting for the base image, expires: 2020-01-31}\n"
        "  - {id: CVE-2023-45853, reason: minizip is not built}\n")
    code = scan(["--from-report", REPORT, "--severity-threshold", "CRITICAL"])
    err = capsys.readouterr().err
    assert code == 1
    assert ("Warning: ignore entry CVE-2024-5535 expired on 2020-01-31; it ignores nothing "
            "(1 finding(s) count again)") in err
    assert "  - 1 finding(s) at or above CRITICAL (1 CRITICAL)" in err


def test_an_sbom_is_made_from_a_recorded_trivy_report_without_scanning_again(workdir, capsys):
    code = scan(["--from-report", REPORT, "--severity-threshold", "NONE", "--sbom",
                 "out/bom.cdx.json"])
    assert code == 0, capsys.readouterr().err
    bom = json.loads(Path("out/bom.cdx.json").read_text())
    assert bom["bomFormat"] == "CycloneDX"
    assert bom["metadata"]["component"]["name"] == IMAGE


def test_a_grype_report_goes_through_the_same_policy(workdir, capsys):
    code = scan(["--from-report", str(DATA / "grype-debian.json"), "--fixable-only",
                 "--gitlab-report", "gl.json"])
    assert code == 1
    assert "  - 1 fixable finding(s) at or above HIGH (1 HIGH)" in \
        capsys.readouterr().err
    SCHEMA.validate(json.loads(Path("gl.json").read_text()))


@pytest.mark.parametrize(
    ("argv", "env", "error"),
    [
        ([], {}, "Error: IMAGE (CD_IMAGE): give the image to scan"),
        (["--from-report", REPORT, "--severity-threshold", "SEVERE"], {},
         "Error: --severity-threshold (from --severity-threshold): must be one of UNKNOWN, "
         "LOW, MEDIUM, HIGH, CRITICAL, NONE; got 'SEVERE'"),
        (["--from-report", REPORT], {"CD_SCAN_SCANNERS": "vuln,virus"},
         "Error: --scanners (from CD_SCAN_SCANNERS): unknown scanner(s) virus"),
        (["app:1", "--image-src", "registry"], {},
         "Error: --image-src (from --image-src): unknown source(s) registry"),
        (["--from-report", "missing.json"], {},
         "Error: --from-report (from --from-report): no such file: missing.json"),
        (["--from-report", REPORT, "--dockerfile", REPORT, "--scanners", "misconfig"], {},
         "Error: --dockerfile (from --dockerfile): --dockerfile needs a scan"),
        (["--from-report", REPORT, "--ignore-file", "nope.yml"], {},
         "Error: --ignore-file (from --ignore-file): no such file: nope.yml"),
        (["--from-report", str(DATA / "grype-debian.json"), "--sbom", "bom.json"], {},
         "Error: --sbom (CD_SCAN_SBOM): an SBOM can be made from a Trivy report only"),
    ],
)
def test_wrong_input_is_exit_2_naming_the_option(workdir, capsys, argv, env, error):
    assert scan(argv, env) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(error)


def test_a_report_that_is_not_a_scanner_report_is_exit_2(workdir, capsys):
    Path("r.json").write_text('{"bomFormat": "CycloneDX"}')
    assert scan(["--from-report", "r.json"]) == 2
    assert "Error: --from-report (CD_SCAN_FROM_REPORT): r.json is neither a Trivy JSON report" \
        in capsys.readouterr().err


def test_a_wrong_ignore_entry_is_exit_2_naming_the_file_and_the_entry(workdir, capsys):
    Path(".docker-cd-ignore.yml").write_text(
        "ignore:\n  - {id: CVE-1, reason: x, expiry: 2027-01-01}\n")
    assert scan(["--from-report", REPORT]) == 2
    assert ("Error: --ignore-file (CD_SCAN_IGNORE_FILE): .docker-cd-ignore.yml: ignore[0] "
            "(CVE-1): unknown key(s) expiry") in capsys.readouterr().err


def test_trivy_missing_is_exit_3_and_never_a_pass(workdir, capsys):
    code = scan(["app:1", "--dotenv", "s.env"], {"TRIVY_BIN": str(workdir / "no-trivy")})
    err = capsys.readouterr().err
    assert code == 3
    assert err.strip().splitlines()[-1].startswith("Error: trivy not found")
    assert "TRIVY_BIN" in err
    assert not Path("s.env").exists()


def fake_trivy(path: Path, script: str) -> str:
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)
    return str(path)


def test_trivy_crashing_is_exit_3_with_its_reason(workdir, capsys):
    binary = fake_trivy(workdir / "trivy", 'echo "panic: runtime error: invalid memory address" '
                        '>&2\necho "FATAL\tFatal error\tscan failed: out of memory" >&2\nexit 2\n')
    assert scan(["app:1", "--scanners", "secret"], {"TRIVY_BIN": binary}) == 3
    err = capsys.readouterr().err
    assert "panic: runtime error" in err  # trivy's own output stays in the log
    assert err.strip().splitlines()[-1] == (
        "Error: trivy failed (exit 2): scan failed: out of memory")


def test_trivy_exiting_0_without_a_report_is_exit_3(workdir, capsys):
    binary = fake_trivy(workdir / "trivy", "exit 0\n")
    assert scan(["app:1", "--scanners", "secret"], {"TRIVY_BIN": binary}) == 3
    assert "Error: trivy exited 0 but wrote nothing to" in capsys.readouterr().err


def test_trivy_killed_is_exit_3(workdir, capsys):
    binary = fake_trivy(workdir / "trivy", "kill -9 $$\n")
    assert scan(["app:1", "--scanners", "secret"], {"TRIVY_BIN": binary}) == 3
    assert "Error: trivy crashed (killed by signal 9)" in capsys.readouterr().err



API = f"registry.example.com/team/api@{DIGEST}"


def test_a_member_is_scanned_from_its_build_jobs_variable(workdir, capsys):
    """`--member api`: the image is CD_IMAGE_API (no CD_IMAGE in a pipeline of several)."""
    code = scan(["--member", "api", "--from-report", REPORT, "--severity-threshold", "NONE",
                 "--dotenv", "s.env"], {"CD_IMAGE_API": API})
    assert code == 0, capsys.readouterr().err
    out = read_dotenv(workdir / "s.env")
    assert (out["CD_SCAN_IMAGE"], out["CD_SCAN_RESULT"]) == (API, "passed")


def test_a_member_whose_variable_is_missing_is_exit_2_naming_it(workdir, capsys):
    assert scan(["--member", "worker", "--from-report", REPORT], {"CD_IMAGE_API": IMAGE}) == 2
    assert "CD_IMAGE_WORKER is not set" in capsys.readouterr().err
