"""`docker-cd register` against the real promotion service (a real process)."""

from __future__ import annotations

import json

import pytest

from steps.cli import run
from steps.commands import register
from steps.commands.inputs.pipeline import Pipeline
from steps.commands.inputs.service import Service
from steps.commands.register import scan_payload
from tests.steps.commands.fake_service import FakeService, context
from tests.support import free_port

REPO = "registry.example.com/demo/hello-app"
DIGEST = "sha256:" + "ab" * 32
SCAN_JSON = {
    "outputs": {"CD_SCAN_RESULT": "failed", "CD_SCAN_SCANNER": "trivy 0.58.1"},
    "scan": {"passed": False, "counts": {"critical": 0, "high": 1, "medium": 2, "low": 0},
             "findings": [{"id": "CVE-2024-1", "type": "vulnerability", "severity": "high",
                           "package": "openssl", "installed_version": "3.0.1",
                           "fixed_version": "3.0.2", "title": "bad", "failing": True}],
             "scanner": {"name": "trivy", "version": "0.58.1"}},
}


def _env(service, **extra):
    return {"CD_SERVICE_URL": service.url, "CD_SERVICE_TOKEN": service.tokens["ci"],
            "CI_PROJECT_PATH": "demo/hello-app", "CI_COMMIT_SHA": "c0ffee" * 6 + "abcd",
            "CI_COMMIT_REF_NAME": "main", "CD_IMAGE_TAGS": "c0ffee12,main",
            "CI_PIPELINE_ID": "1234", "CI_PIPELINE_URL": "https://gitlab.example.com/p/1234",
            **extra}


def test_registers_the_image_with_its_provenance_once(service, tmp_path, capsys):
    image = f"{REPO}@{DIGEST}"
    out1, out2 = tmp_path / "1.json", tmp_path / "2.json"
    assert run(["register", image, "--json", str(out1)], _env(service)) == 0
    assert run(["register", image, "--json", str(out2)], _env(service)) == 0
    first, second = json.loads(out1.read_text()), json.loads(out2.read_text())
    assert first["outputs"]["CD_SERVICE_IMAGE_ID"] == second["outputs"]["CD_SERVICE_IMAGE_ID"]
    shown = service.api("GET", f"images/{first['image']['id']}")
    assert (shown["repository"], shown["digest"], shown["project"]) == \
        (REPO, DIGEST, "demo/hello-app")
    assert shown["commit_sha"] == "c0ffee" * 6 + "abcd"
    assert (shown["ref"], shown["tags"], shown["pipeline_id"]) == ("main", ["c0ffee12", "main"],
                                                                   1234)
    assert len(service.api("GET", "images", params={"digest": DIGEST})) == 1
    assert service.tokens["ci"] not in capsys.readouterr().err


def test_records_the_scan_summary_from_the_scan_steps_json(service, tmp_path):
    digest = "sha256:" + "cd" * 32
    report = tmp_path / "scan.json"
    report.write_text(json.dumps(SCAN_JSON))
    out = tmp_path / "register.json"
    assert run(["register", f"{REPO}@{digest}", "--scan-report", str(report), "--json", str(out)],
               _env(service)) == 0
    image_id = json.loads(out.read_text())["image"]["id"]
    entries = service.api("GET", "audit", params={"action": "scan.recorded",
                                                  "subject_id": str(image_id)})
    assert [e["after"]["counts"] for e in entries] == [{"critical": 0, "high": 1, "medium": 2,
                                                        "low": 0}]
    assert entries[0]["after"]["scanner"] == "trivy 0.58.1"


def test_scan_summary_from_a_dotenv_file():
    text = "CD_SCAN_RESULT=passed\nCD_SCAN_CRITICAL=0\nCD_SCAN_HIGH=0\nCD_SCAN_LOW=3\n"
    body = scan_payload(text, REPO, DIGEST, None)
    assert body["counts"] == {"critical": 0, "high": 0, "low": 3}


@pytest.mark.parametrize(("argv", "env", "message"), [
    (["register", f"{REPO}:v1"], {}, "names no digest"),
    (["register"], {}, "which image?"),
    (["register", f"{REPO}@{DIGEST}"], {"CD_SERVICE_URL": ""}, "set CD_SERVICE_URL"),
    (["register", f"{REPO}@{DIGEST}", "--scan-report", "/nonexistent.json"], {},
     "/nonexistent.json does not exist"),
])
def test_bad_input_is_exit_2_naming_the_fault(service, capsys, argv, env, message):
    assert run(argv, _env(service, **env)) == 2
    err = capsys.readouterr().err
    assert err.count("Error:") == 1 and message in err


def test_a_refused_token_names_the_variable(service, capsys):
    env = _env(service, CD_SERVICE_TOKEN="pst_9_not-a-real-token-at-all")
    assert run(["register", f"{REPO}@{DIGEST}"], env) == 2
    err = capsys.readouterr().err
    assert "CD_SERVICE_TOKEN" in err and "pst_9_not-a-real-token-at-all" not in err


def test_an_unreachable_service_is_exit_3(capsys):
    env = {"CD_SERVICE_URL": f"http://127.0.0.1:{free_port()}", "CI_PROJECT_PATH": "demo/app"}
    assert run(["register", f"{REPO}@{DIGEST}"], env) == 3
    assert "failed after" in capsys.readouterr().err


def test_the_image_then_its_scan_summary_are_posted_from_the_pipeline_s_variables(tmp_path):
    """With a fake of the service's client: the bodies register sends, and what it hands on."""
    report = tmp_path / "scan.env"
    report.write_text("CD_SCAN_SCANNER=trivy 0.58.1\nCD_SCAN_CRITICAL=0\nCD_SCAN_HIGH=2\n")
    fake = FakeService({"id": 7}, {"id": 3})
    settings = register.Settings(
        image=f"{REPO}:v1@{DIGEST}", tags=("v1",), scan_report=str(report),
        job_url="https://gitlab.example.com/p/-/jobs/9",
        pipeline=Pipeline(commit_sha="c0ffee" * 6 + "abcd", git_tag="v1", pipeline_id="1234",
                          project_path="demo/hello-app"),
        service=Service(service_url="http://service.test"))
    ctx, log = context(fake)
    result = register.execute(settings, ctx)
    assert fake.requests == [
        ("POST", "images", {"repository": REPO, "digest": DIGEST, "project": "demo/hello-app",
                            "commit_sha": "c0ffee" * 6 + "abcd", "ref": "v1", "tags": ["v1"],
                            "pipeline_id": 1234}),
        ("POST", "scans", {"repository": REPO, "digest": DIGEST, "scanner": "trivy 0.58.1",
                           "counts": {"critical": 0, "high": 2}, "findings": [],
                           "report_url": "https://gitlab.example.com/p/-/jobs/9"})]
    assert result.outputs == {"CD_SERVICE_IMAGE_ID": "7"}
    assert "Scan summary recorded (critical 0, high 2)" in log.getvalue()


def test_one_image_with_a_template_is_a_release_holding_the_template_hash(service, tmp_path):
    """Deploy compares the checkout's template with the release's: the one-image release
    must hold the hash (POST /images gives none); a changed template is another release."""
    from steps.template import deploy_files_hash

    template = tmp_path / "deploy"
    template.mkdir()
    (template / "compose.yml").write_text("services:\n  web:\n    image: ${CD_IMAGE}\n")
    (template / "settings.txt").write_text("max_notes=100\n")
    image = f"{REPO}@sha256:" + "ef" * 32
    env = _env(service, CD_TEMPLATE_DIR=str(template))
    out1, out2, out3 = (tmp_path / f"{n}.json" for n in (1, 2, 3))
    assert run(["register", image, "--json", str(out1)], env) == 0
    assert run(["register", image, "--json", str(out2)], env) == 0  # a retried job
    first, again = json.loads(out1.read_text()), json.loads(out2.read_text())
    release_id = first["outputs"]["CD_RELEASE_ID"]
    assert again["outputs"]["CD_RELEASE_ID"] == release_id
    release = service.api("GET", f"releases/{release_id}")
    assert release["template_hash"] == deploy_files_hash(template)
    assert [(m["name"], m["repository"], m["digest"]) for m in release["members"]] == [
        ("app", REPO, "sha256:" + "ef" * 32)]
    shown = service.api("GET", f"images/{first['outputs']['CD_SERVICE_IMAGE_ID']}")
    assert (shown["repository"], shown["commit_sha"]) == (REPO, "c0ffee" * 6 + "abcd")

    (template / "settings.txt").write_text("max_notes=200\n")  # the image reused, new config
    assert run(["register", image, "--json", str(out3)], env) == 0
    changed = json.loads(out3.read_text())["outputs"]
    assert changed["CD_RELEASE_ID"] != release_id
    assert changed["CD_SERVICE_IMAGE_ID"] == first["outputs"]["CD_SERVICE_IMAGE_ID"]
    assert service.api("GET", f"releases/{changed['CD_RELEASE_ID']}")["template_hash"] == \
        deploy_files_hash(template)


def test_one_image_without_a_template_is_registered_through_images(service, tmp_path):
    image = f"{REPO}@sha256:" + "fe" * 32
    out = tmp_path / "out.json"
    env = _env(service, CD_TEMPLATE_DIR=str(tmp_path / "none"))  # a client with no template
    assert run(["register", image, "--json", str(out)], env) == 0
    release_id = json.loads(out.read_text())["outputs"]["CD_RELEASE_ID"]
    assert service.api("GET", f"releases/{release_id}")["template_hash"] is None
