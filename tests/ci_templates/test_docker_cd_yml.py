"""The GitLab template and every example pipeline: valid against GitLab's CI schema, and the
jobs each kind of pipeline gets (evaluated by gitlab-ci-local, as GitLab evaluates rules)."""

from __future__ import annotations

import pytest
import yaml

from docker_cd_local.pipelines import EXAMPLES, PIPELINES, ROOT, TEMPLATE, AppRepo, PipelineFailed
from tests.schemas import gitlab_ci_validator

CONFIGS = [TEMPLATE, *sorted(EXAMPLES.glob("*/.gitlab-ci.yml"))]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_config_is_valid_against_gitlab_schema(path):
    documents = list(yaml.safe_load_all(path.read_text()))
    assert documents, f"{path} is empty"
    validator = gitlab_ci_validator()
    for document in documents:  # a `spec:` header, then the configuration
        errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
        assert not errors, "\n".join(f"{list(e.path)}: {e.message[:300]}" for e in errors)


def test_schema_check_catches_a_broken_job():
    broken = {"build": {"script": "docker-cd build", "when": "sometimes"}}
    assert list(gitlab_ci_validator().iter_errors(broken))


def test_template_header_documents_every_input_and_switch():
    header, body = yaml.safe_load_all(TEMPLATE.read_text())
    text = TEMPLATE.read_text().split("\nspec:", 1)[0]
    for name, spec in header["spec"]["inputs"].items():
        assert "default" in spec, f"input {name} has no default"
        assert name in text, f"input {name} is not described in the header comment"
    for job in _concrete_jobs(body):
        for rule in body[job]["rules"]:
            condition = str(rule.get("if", ""))
            if "_DISABLED" in condition:
                switch = condition.split()[0].lstrip("$")
                assert switch in text, f"{switch} ({job}) is not in the header comment"
                break
        else:
            pytest.fail(f"job {job} has no *_DISABLED switch")


def test_every_job_extends_a_hidden_base_and_only_calls_docker_cd():
    _, body = yaml.safe_load_all(TEMPLATE.read_text())
    for job in _concrete_jobs(body):
        assert str(body[job]["extends"]).startswith(".docker-cd-"), job
    for name, job in body.items():
        for line in job.get("script", []) if isinstance(job, dict) else []:
            assert line.startswith("docker-cd "), f"{name}: {line}"
        assert "before_script" not in (job if isinstance(job, dict) else {}), name


def _concrete_jobs(body: dict) -> list[str]:
    keywords = {"stages", "variables", "include", "default", "workflow", "spec"}
    return [k for k in body if not k.startswith(".") and k not in keywords]


# ------------------------------------------------ rules, as gitlab-ci-local sees them

SERVICE = {"CD_SERVICE_URL": "http://127.0.0.1:1"}
TRIGGERED = {"CI_PIPELINE_SOURCE": "trigger", "CD_IMAGE": "127.0.0.1:5000/demo/hello-app@sha256:"
             + "a" * 64, "CD_PROMOTION_ID": "17"}

CASES = [
    ("merge-request", PIPELINES["merge-request"] | SERVICE,
     {"template-check": "on_success", "build": "on_success", "scan": "on_success",
      "register": "on_success", "gate": "on_success"}),
    ("merge-request without service", PIPELINES["merge-request"],
     {"template-check": "on_success", "build": "on_success", "scan": "on_success"}),
    ("feature-branch", PIPELINES["feature-branch"] | SERVICE,
     {"template-check": "on_success", "build": "on_success", "scan": "on_success",
      "register": "on_success"}),
    ("default-branch", PIPELINES["default-branch"] | SERVICE,
     {"template-check": "on_success", "build": "on_success", "scan": "on_success",
      "register": "on_success", "deploy-test": "on_success", "verify-test": "on_success",
      "rollback-test": "manual", "stop-test": "manual", "gate-staging": "on_success"}),
    ("default-branch without service", PIPELINES["default-branch"],
     {"template-check": "on_success", "build": "on_success", "scan": "on_success",
      "deploy-test": "on_success", "verify-test": "on_success", "rollback-test": "manual",
      "stop-test": "manual"}),
    ("tag", PIPELINES["tag"] | SERVICE,
     {"template-check": "on_success", "build": "on_success", "scan": "on_success",
      "register": "on_success", "tag-release": "on_success"}),
    ("triggered for test", TRIGGERED | SERVICE | {"CD_TARGET_ENVIRONMENT": "test"},
     {"deploy-test": "on_success", "verify-test": "on_success", "rollback-test": "manual",
      "stop-test": "manual"}),
    ("triggered for staging", TRIGGERED | SERVICE | {"CD_TARGET_ENVIRONMENT": "staging"},
     {"deploy-staging": "on_success", "verify-staging": "on_success",
      "rollback-staging": "manual", "stop-staging": "manual"}),
    ("triggered for production", TRIGGERED | SERVICE | {"CD_TARGET_ENVIRONMENT": "production"},
     {"deploy-production": "manual", "verify-production": "on_success",
      "rollback-production": "manual", "stop-production": "manual"}),
    ("a service rollback of production restores at once and deploys nothing new",
     TRIGGERED | SERVICE | {"CD_TARGET_ENVIRONMENT": "production",
                            "CD_ROLLBACK_TO": "20261126T171530123Z-3f2a"},
     {"rollback-production": "on_success", "stop-production": "manual"}),
    ("a service rollback of staging", TRIGGERED | SERVICE | {
        "CD_TARGET_ENVIRONMENT": "staging", "CD_ROLLBACK_TO": "20261126T171530123Z-3f2a"},
     {"rollback-staging": "on_success", "stop-staging": "manual"}),
    ("triggered for staging with a release of several images (no CD_IMAGE)",
     {"CI_PIPELINE_SOURCE": "trigger", "CD_TARGET_ENVIRONMENT": "staging",
      "CD_RELEASE_ID": "12", "CD_IMAGE_API": TRIGGERED["CD_IMAGE"],
      "CD_IMAGE_WORKER": TRIGGERED["CD_IMAGE"]} | SERVICE,
     {"deploy-staging": "on_success", "verify-staging": "on_success",
      "rollback-staging": "manual", "stop-staging": "manual"}),
    ("triggered without an image deploys nothing",
     {"CI_PIPELINE_SOURCE": "trigger", "CD_TARGET_ENVIRONMENT": "staging"} | SERVICE, {}),
    ("build disabled", PIPELINES["feature-branch"] | {"CD_BUILD_DISABLED": "true",
                                                     "CD_SCAN_DISABLED": "1",
                                                     "CD_TEMPLATE_CHECK_DISABLED": "true"}, {}),
    ("stop jobs disabled", TRIGGERED | SERVICE | {"CD_TARGET_ENVIRONMENT": "staging",
                                                  "CD_STOP_DISABLED": "true"},
     {"deploy-staging": "on_success", "verify-staging": "on_success",
      "rollback-staging": "manual"}),
    ("production disabled",
     TRIGGERED | SERVICE | {"CD_TARGET_ENVIRONMENT": "production",
                            "CD_DEPLOY_PRODUCTION_DISABLED": "true"},
     {"rollback-production": "manual"}),
]


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> AppRepo:
    return AppRepo.create(tmp_path_factory.mktemp("rules") / "hello-app")


@pytest.mark.parametrize(("variables", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_pipeline_holds_exactly_these_jobs(repo, variables, expected):
    assert repo.jobs(variables) == expected


def test_each_environment_stops_with_its_own_manual_teardown_job():
    _, body = yaml.safe_load_all(TEMPLATE.read_text())
    for environment in ("test", "staging", "production"):
        deploy, stop = body[f"deploy-{environment}"], body[f"stop-{environment}"]
        assert deploy["environment"]["on_stop"] == f"stop-{environment}"
        assert stop["environment"] == {"name": deploy["environment"]["name"], "action": "stop"}
        assert stop["resource_group"] == deploy["resource_group"]
        assert all(r.get("when") in ("manual", "never") for r in stop["rules"])
    assert body[".docker-cd-teardown"]["variables"]["GIT_STRATEGY"] == "none"
    assert body[".docker-cd-teardown"]["script"][0].startswith("docker-cd teardown ")


def test_production_deploy_blocks_the_pipeline_and_staging_does_not_wait(repo):
    listing = repo.jobs(TRIGGERED | SERVICE | {"CD_TARGET_ENVIRONMENT": "production"})
    assert listing["deploy-production"] == "manual"
    _, body = yaml.safe_load_all(TEMPLATE.read_text())
    production = body["deploy-production"]
    rule = next(r for r in production["rules"] if r.get("when") == "manual")
    assert rule["allow_failure"] is False  # blocking: the pipeline waits for QA
    assert production["environment"]["deployment_tier"] == "production"
    assert production["resource_group"] == body["rollback-production"]["resource_group"]


# ------------------------------------------------ the file as a component: spec:inputs

def _include_with(repo: AppRepo, inputs: dict[str, str]) -> None:
    lines = ["include:", "  - local: ci-templates/docker-cd.yml", "    inputs:"]
    lines += [f"      {k}: {v}" for k, v in inputs.items()]
    (repo.path / ".gitlab-ci.yml").write_text("\n".join(lines) + "\n")
    repo.commit("inputs")


def test_inputs_set_the_variables_the_steps_read(tmp_path):
    repo = AppRepo.create(tmp_path / "app")
    _include_with(repo, {"deploy_target": "swarm", "staging_environment": "qa",
                         "service_token_variable": "MY_TOKEN",
                         "service_audience": "https://promotion.example.com",
                         "service_auth": "token"})
    preview = yaml.safe_load(repo.preview())
    variables = preview["variables"]
    assert variables["CD_DEPLOY_TARGET"] == "swarm"
    assert variables["CD_STAGING_ENVIRONMENT"] == "qa"
    assert variables["CD_SERVICE_TOKEN"] == "$MY_TOKEN"
    assert variables["CD_SERVICE_AUTH"] == "token"
    # every job gets an ID token for the service, with the audience the service expects
    jobs = {k: v for k, v in preview.items() if isinstance(v, dict) and "script" in v}
    assert jobs and all(job["id_tokens"] == {
        "CD_SERVICE_ID_TOKEN": {"aud": "https://promotion.example.com"}}
        for job in jobs.values())
    staging = repo.jobs({"CD_TARGET_ENVIRONMENT": "qa", "CD_IMAGE": TRIGGERED["CD_IMAGE"],
                         "CI_PIPELINE_SOURCE": "trigger"})
    assert staging == {"deploy-staging": "on_success", "verify-staging": "on_success",
                       "rollback-staging": "manual", "stop-staging": "manual"}


def test_an_input_outside_its_options_is_refused_by_name(tmp_path):
    repo = AppRepo.create(tmp_path / "app")
    _include_with(repo, {"deploy_target": "kubernetes"})
    with pytest.raises(PipelineFailed, match="deploy_target"):
        repo.preview()


# ------------------------------------------------ an application of several images

SEVERAL = """\
include:
  - local: ci-templates/docker-cd.yml
.members:
  parallel:
    matrix:
      - CD_MEMBER: api
        CD_BUILD_CONTEXT: services/api
      - CD_MEMBER: worker
        CD_BUILD_CONTEXT: services/worker
        CD_DOCKERFILE: Dockerfile.worker
build:
  extends: [.docker-cd-build-member, .members]
scan:
  extends: [.docker-cd-scan-member, .members]
  needs: [build]
register:
  extends: .docker-cd-register-release
  needs: [build, scan]
"""


def test_an_application_of_several_images_builds_and_scans_each_then_registers_once(tmp_path):
    repo = AppRepo.create(tmp_path / "app")
    (repo.path / ".gitlab-ci.yml").write_text(SEVERAL)
    repo.commit("two images")
    jobs = repo.jobs(PIPELINES["default-branch"] | SERVICE)
    assert {k: v for k, v in jobs.items() if k.startswith(("build", "scan", "register"))} == {
        "build: [api,services/api]": "on_success",
        "build: [worker,services/worker,Dockerfile.worker]": "on_success",
        "scan: [api,services/api]": "on_success",
        "scan: [worker,services/worker,Dockerfile.worker]": "on_success",
        "register": "on_success"}
    preview = yaml.safe_load(repo.preview())
    assert preview["register"]["variables"]["CD_SCAN_REPORT"] == "scan-{name}.json"
    assert preview["build"]["artifacts"]["reports"]["dotenv"] == "build-$CD_MEMBER.env"
    assert preview["scan"]["artifacts"]["reports"]["container_scanning"] == (
        "gl-container-scanning-report-$CD_MEMBER.json")
