"""The Jenkins shared library and the example Jenkinsfile: they compile with Groovy (Debian's
groovy, the 2.4 line Jenkins runs) and carry the same stages and steps as the GitLab template."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from docker_cd_local.pipelines import EXAMPLES, ROOT, TEMPLATE

VARS = ROOT / "ci-templates" / "jenkins" / "vars"
SOURCES = [*sorted(VARS.glob("*.groovy")), *sorted(EXAMPLES.glob("*/Jenkinsfile"))]
# Jenkins provides @Library and @NonCPS; stubs let plain groovyc compile the sources.
LIBRARY_STUB = """import java.lang.annotation.*
@Retention(RetentionPolicy.SOURCE)
@interface Library { String[] value() }
@Retention(RetentionPolicy.SOURCE)
@interface NonCPS {}
"""


def _java_home() -> str:
    if os.environ.get("JAVA_HOME") and Path(os.environ["JAVA_HOME"], "bin", "java").exists():
        return os.environ["JAVA_HOME"]
    for candidate in [Path("/usr/lib/jvm/default-java"), *sorted(Path("/usr/lib/jvm").glob("*"))]:
        if (candidate / "bin" / "java").exists():
            return str(candidate)
    pytest.fail("no JDK found for groovyc (install default-jdk-headless)", pytrace=False)


def compile_groovy(tmp_path: Path, *sources: Path) -> subprocess.CompletedProcess:
    groovyc = shutil.which("groovyc")
    if not groovyc:
        pytest.fail("groovyc is not installed (Debian package groovy)", pytrace=False)
    stub = tmp_path / "Library.groovy"
    stub.write_text(LIBRARY_STUB)
    env = {**os.environ, "JAVA_HOME": _java_home()}
    return subprocess.run([groovyc, "-d", str(tmp_path / "classes"), str(stub),
                           *map(str, sources)], capture_output=True, text=True, env=env,
                          timeout=120)


def test_library_and_jenkinsfiles_compile(tmp_path):
    assert len(SOURCES) >= 3
    result = compile_groovy(tmp_path, *SOURCES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_syntax_error_fails_the_check(tmp_path):
    broken = tmp_path / "dockerCdPipeline.groovy"
    broken.write_text((VARS / "dockerCdPipeline.groovy").read_text().replace(
        "stage('scan') {", "stage('scan' {", 1))
    result = compile_groovy(tmp_path, broken)
    assert result.returncode != 0
    assert "dockerCdPipeline.groovy" in result.stdout + result.stderr


def test_same_stages_and_steps_as_the_gitlab_template():
    _, body = yaml.safe_load_all(TEMPLATE.read_text())
    pipeline = (VARS / "dockerCdPipeline.groovy").read_text()
    assert re.findall(r"stage\('([^']+)'\)", pipeline) == body["stages"]
    gitlab_steps = {m for job in body.values() if isinstance(job, dict)
                    for line in job.get("script", [])
                    for m in re.findall(r"docker-cd (\w+(?: check)?)", line)}
    jenkins_steps = set(re.findall(r"dockerCd\('(\w+(?: check)?)'", pipeline))
    assert jenkins_steps == gitlab_steps


# ------------------------------------------------------------------ the library, run

HARNESS = Path(__file__).parent / "jenkins_harness.groovy"
IMAGE = "registry.example.com/demo/hello-app@sha256:" + "a" * 64
REGISTRY = "credentials usernamePassword registry-ci -> CD_REGISTRY_USER/CD_REGISTRY_PASSWORD"
TOKEN = "credentials string docker-cd-service-token -> CD_SERVICE_TOKEN"


def run_library(env: dict[str, str], params: dict[str, str] | None = None) -> list[str]:
    """What the library does in one Jenkins build: stages, sh commands, inputs, credentials."""
    groovy = shutil.which("groovy")
    if not groovy:
        pytest.fail("groovy is not installed (Debian package groovy)", pytrace=False)
    pairs = [";".join(f"{k}={v}" for k, v in m.items()) for m in (env, params or {})]
    out = subprocess.run([groovy, str(HARNESS), str(VARS), *pairs], capture_output=True,
                         text=True, timeout=120, env={**os.environ, "JAVA_HOME": _java_home()})
    assert out.returncode == 0, out.stdout + out.stderr
    return [re.sub(r" --dotenv \.docker-cd-[a-z-]+\.env$", "", line)
            for line in out.stdout.splitlines()]


def test_default_branch_builds_registers_scans_and_deploys_to_test():
    calls = run_library({"BRANCH_NAME": "main", "SERVICE": "https://promotion.example.com"})
    assert [c for c in calls if c.startswith(("stage", "sh", "input"))] == [
        "stage build", "sh docker-cd template check --environments test,staging,production",
        "sh docker-cd build --push", "sh docker-cd register",
        "stage scan", f"sh docker-cd scan {IMAGE} --gitlab-report "
        "gl-container-scanning-report.json --sbom gl-sbom-docker-cd.cdx.json",
        "stage deploy-test", "sh docker-cd deploy --environment test",
        "stage verify-test", "sh docker-cd verify --environment test",
        "stage promote", "sh docker-cd gate --environment staging",
    ]
    build = calls[calls.index("stage build"):calls.index("sh docker-cd build --push")]
    assert REGISTRY in build  # registry credentials bound around the push


def test_a_triggered_production_build_waits_for_input_then_gates_and_deploys_that_image():
    calls = run_library({"BRANCH_NAME": "main", "SERVICE": "https://promotion.example.com"},
                        {"CD_TARGET_ENVIRONMENT": "production", "CD_IMAGE": IMAGE,
                         "CD_PROMOTION_ID": "3"})
    assert [c for c in calls if c.startswith(("stage", "sh", "input", "lock"))] == [
        "stage deploy-production", f"input Deploy {IMAGE} to production?",
        "lock docker-cd-production", "sh docker-cd gate --environment production --claim",
        "sh docker-cd deploy --environment production",
        "sh docker-cd verify --environment production",
    ]
    gate = calls.index("sh docker-cd gate --environment production --claim")
    assert REGISTRY in calls[:gate] and TOKEN in calls[:gate]


def test_a_change_request_builds_and_scans_but_deploys_nothing():
    calls = run_library({"BRANCH_NAME": "PR-7", "CHANGE_ID": "7",
                         "SERVICE": "https://promotion.example.com"})
    assert [c.split(" --")[0] for c in calls if c.startswith("sh")] == [
        "sh docker-cd template check", "sh docker-cd build", "sh docker-cd register",
        f"sh docker-cd scan {IMAGE}"]


@pytest.mark.parametrize("environment", ["staging", "production"])
def test_a_teardown_build_asks_then_tears_the_environment_down(environment):
    calls = run_library({"BRANCH_NAME": "main", "SERVICE": "https://promotion.example.com"},
                        {"CD_TARGET_ENVIRONMENT": environment, "CD_TEARDOWN": "true"})
    assert [c for c in calls if c.startswith(("stage", "sh", "input", "lock"))] == [
        f"stage deploy-{environment}", f"input Tear {environment} down (its volumes are kept)?",
        f"lock docker-cd-{environment}", f"sh docker-cd teardown --environment {environment}"]


def test_several_images_are_built_and_scanned_each_then_registered_as_one_release():
    calls = run_library({"BRANCH_NAME": "main", "SERVICE": "https://promotion.example.com",
                         "IMAGES": "api=services/api,worker=services/worker/Dockerfile.worker"})
    assert [c for c in calls if c.startswith(("stage", "sh"))][:8] == [
        "stage build", "sh docker-cd template check --environments test,staging,production",
        "sh docker-cd build --push --member api --context services/api --file Dockerfile",
        "sh docker-cd build --push --member worker --context services/worker "
        "--file Dockerfile.worker",
        "stage scan",
        "sh docker-cd scan --member api --gitlab-report gl-container-scanning-report-api.json "
        "--sbom gl-sbom-api.cdx.json --json scan-api.json",
        "sh docker-cd scan --member worker --gitlab-report "
        "gl-container-scanning-report-worker.json --sbom gl-sbom-worker.cdx.json "
        "--json scan-worker.json",
        "sh docker-cd register --scan-report scan-{name}.json",
    ]


def test_a_triggered_build_of_a_release_deploys_its_members():
    calls = run_library({"BRANCH_NAME": "main", "SERVICE": "https://promotion.example.com"},
                        {"CD_TARGET_ENVIRONMENT": "staging", "CD_RELEASE_ID": "12"})
    assert [c for c in calls if c.startswith(("stage", "sh"))] == [
        "stage deploy-staging", "sh docker-cd gate --environment staging --claim",
        "sh docker-cd deploy --environment staging",
        "stage verify-staging", "sh docker-cd verify --environment staging"]


def test_a_triggered_build_hands_the_release_commit_and_template_hash_to_deploy():
    commit, template_hash = "ab" * 20, "sha256:" + "7e" * 32
    calls = run_library({"BRANCH_NAME": "main", "SERVICE": "https://promotion.example.com"},
                        {"CD_TARGET_ENVIRONMENT": "staging", "CD_RELEASE_ID": "12",
                         "CD_RELEASE_COMMIT": commit, "CD_RELEASE_TEMPLATE_HASH": template_hash})
    deploy = calls.index("sh docker-cd deploy --environment staging")
    assert calls[deploy + 1] == (f"env CD_RELEASE_COMMIT={commit} "
                                 f"CD_RELEASE_TEMPLATE_HASH={template_hash}")
