"""The whole delivery of examples/hello-app, as a team gets it from one `include:`.

gitlab-ci-local runs the pipelines, each job in the runner image the template uses by default
(its docker executor, on the host's network, with the engine's socket), against the real engine
and a registry that asks for a password on every pull; the real promotion service (a real
process) records everything and triggers the staging and production pipelines through the
GitLab API double; the test then runs each triggered pipeline with exactly the variables the
service sent. Every job shows the service an ID token the double signed (no service token at
all). Two releases go all the way to production, then production is rolled back three ways,
which all mean the same: the rollback job, the service's rollback (its pipeline restores the
release the service names), and an old deploy job run again (GitLab's environment
"Rollback"); a git tag reuses the verified image. After each stage: the registry, the running
containers, the service's state.
"""

from __future__ import annotations

import json
import re

import pytest

from docker_cd_local.pipelines import DockerExecutor
from docker_cd_local.stack import Stack
from steps.release import Release
from steps.targets.docker import DockerTarget
from steps.template import deploy_files_hash
from tests.runner_image import helper_image, runner_image
from tests.schemas import container_scanning_validator
from tests.support import docker_client

pytestmark = [pytest.mark.e2e, pytest.mark.docker, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def stack(docker, tmp_path_factory):
    # every job in the runner image the template uses by default, built as CI builds it
    executor = DockerExecutor(runner_image(docker), helper_image(docker))
    stack = Stack.start(tmp_path_factory.mktemp("e2e"), executor=executor)
    yield stack
    stack.stop()


def _release(stack: Stack, version: str, pipelines_before: int) -> str:
    """Push a commit and take its image through test and staging to production."""
    sha = stack.push(change=version)
    stack.run_branch_pipeline()

    # build + push: the image is in the registry under its commit and branch, by one digest
    build = stack.repo.dotenv("build", "build.env")
    image = build["CD_IMAGE"]
    repository, digest = image.rsplit("@", 1)
    assert repository == stack.image_repository
    tags = stack.registry_tags()
    assert sha[:8] in " ".join(tags) and "main" in tags
    assert stack.registry_digest("main") == digest

    # scan: GitLab's reports were exported as the job's artifacts
    artifacts = stack.repo.path / ".gitlab-ci-local" / "artifacts" / "scan"
    [report] = artifacts.rglob("gl-container-scanning-report.json")
    container_scanning_validator().validate(json.loads(report.read_text()))
    [sbom] = artifacts.rglob("gl-sbom-docker-cd.cdx.json")
    assert json.loads(sbom.read_text())["bomFormat"] == "CycloneDX"

    # register + scan + deploy test + verify: the service saw all of it
    state = stack.image_state(image)
    assert state["image"]["commit_sha"] == sha
    scans = stack.service.api("GET", "audit", params={
        "action": "scan.recorded", "subject_id": str(state["image"]["id"])})
    assert [s["after"]["counts"].get("critical", 0) for s in scans] == [0]
    assert state["test"]["live"] is True
    assert state["test"]["deployment"]["state"] == "succeeded"
    assert state["test"]["verification"]["passed"] is True
    assert stack.answer("test").startswith(f"Hello from test (version {version})")
    assert _running(stack, "test") == image  # the digest that was built and scanned

    # the service promotes to staging by policy: one pipeline, with exactly these variables
    staging = stack.wait_for_pipeline("staging", after=pipelines_before)
    # its release of one member, `app`: CD_IMAGE as ever, and the release's own variables
    # (register made it with the template's hash: deploy compares the checkout's with it)
    assert set(staging.variables) == {"CD_IMAGE", "CD_IMAGE_APP", "CD_RELEASE_ID",
                                      "CD_RELEASE_COMMIT", "CD_RELEASE_TEMPLATE_HASH",
                                      "CD_TARGET_ENVIRONMENT", "CD_PROMOTION_ID"}
    assert staging.variables["CD_RELEASE_COMMIT"] == sha
    assert staging.variables["CD_RELEASE_TEMPLATE_HASH"] == \
        deploy_files_hash(stack.repo.path / "deploy")
    assert staging.variables["CD_IMAGE"] == staging.variables["CD_IMAGE_APP"] == image
    assert (staging.project_id, staging.ref) == (42, "main")
    stack.untag(image)  # as on another runner: staging pulls it, with the job's credentials
    log = stack.run_triggered(staging)
    assert f"+ docker pull {image}" in log
    assert stack.answer("staging").startswith(f"Bonjour from staging (version {version})")
    assert _running(stack, "staging") == image  # the very digest test verified, not a rebuild
    assert stack.registry_digest(sha) == digest  # and the registry's tags did not move
    state = stack.image_state(image)
    assert state["staging"]["live"] is True
    assert state["staging"]["promotion"]["state"] == "verified"
    assert stack.answer("test").startswith(f"Hello from test (version {version})")

    # production waits for an approval: no pipeline until QA approves through the service
    assert len(stack.gitlab.pipelines) == pipelines_before + 1
    assert state["production"]["live"] is False
    stack.approve(image, "production")
    production = stack.wait_for_pipeline("production", after=pipelines_before + 1)
    assert production.variables["CD_IMAGE"] == image

    # deploy-production is a manual job: QA plays it
    assert stack.repo.jobs({**production.variables, "CI_PIPELINE_SOURCE": "trigger"}) \
        ["deploy-production"] == "manual"
    stack.run_triggered(production, manual=("deploy-production",), user="qa")
    assert stack.answer("production").startswith(f"Welcome from production (version {version})")
    assert _running(stack, "production") == image
    assert stack.image_state(image)["production"]["live"] is True
    return image


def _roll_forward(stack: Stack, project_id: int, image: str, after: int) -> None:
    """Bring a release rolled back out of production back: lift the hold, promote it with a
    reason, and let QA play the production deploy job of the pipeline the service starts."""
    repository, digest = image.split("@")
    stack.service.api("DELETE", f"projects/{project_id}/environments/production/hold",
                      role="release-manager")
    stack.service.api("POST", "promotions", role="release-manager", json={
        "repository": repository, "digest": digest, "environment": "production",
        "reason": "the fault was in the data, not the release"})
    pipeline = stack.wait_for_pipeline("production", after=after)
    stack.run_triggered(pipeline, manual=("deploy-production",), user="qa")
    assert stack.answer("production").startswith("Welcome from production (version 2)")
    assert _running(stack, "production") == image


def _running(stack: Stack, environment: str) -> str:
    """The image (repository@digest) of the one container serving an environment."""
    [container] = stack.containers(environment)
    [image] = [d for d in container.image.attrs["RepoDigests"]
               if d.startswith(stack.image_repository + "@")]
    return image


def _production(stack: Stack) -> tuple[int, list[dict]]:
    """The service's project id and its production releases, newest first."""
    [project] = stack.service.api("GET", "projects")
    return project["id"], stack.service.api(
        "GET", f"projects/{project['id']}/environments/production/releases")


def _records(stack: Stack) -> dict[str, Release]:
    """The target's own production release records, by release id."""
    target = DockerTarget(docker_client())
    return {r.id: r for r in target.records(stack.project, "production")}


def test_two_releases_reach_production_and_production_rolls_back(stack):
    first = _release(stack, "1", pipelines_before=0)
    first_sha = stack.image_state(first)["image"]["commit_sha"]
    second = _release(stack, "2", pipelines_before=2)
    assert first != second
    first_production, last = stack.gitlab.pipelines[1], stack.gitlab.pipelines[3]

    # one click on rollback-production: back to the last release verified there, the first
    # image, which the engine no longer has under any name: the rollback pulls it with the
    # job's credentials
    stack.untag(first, delete=True)
    stack.run_triggered(last, jobs=("rollback-production",), user="qa")
    assert stack.answer("production").startswith("Welcome from production (version 1)")
    assert _running(stack, "production") == first
    assert stack.image_state(first)["production"]["live"] is True
    assert stack.image_state(second)["production"]["live"] is False
    # the other environments were left alone
    assert stack.answer("staging").startswith("Bonjour from staging (version 2)")
    assert stack.answer("test").startswith("Hello from test (version 2)")
    project_id, releases = _production(stack)
    hold = stack.service.api("GET", f"projects/{project_id}")["environments"][2]["hold"]
    assert hold["by"] == "qa" and "rollback job" in hold["reason"]

    # the release rolled back out of production comes back only as an explicit promotion with a
    # reason (the hold is lifted first); QA plays its deploy job
    _roll_forward(stack, project_id, second, after=4)

    # the service's rollback: it names the verified release, its pipeline restores exactly that
    promotion = stack.service.api("POST", f"projects/{project_id}/environments/production/"
                                  "rollback", role="release-manager", json={"reason": "drill"})
    assert promotion["image"] == first
    rollback = stack.wait_for_pipeline("production", after=5)
    assert rollback.variables["CD_ROLLBACK_TO"] == promotion["record_id"]
    stack.run_triggered(rollback)  # rollback-production runs at once, then verifies
    assert stack.answer("production").startswith("Welcome from production (version 1)")
    _, releases = _production(stack)
    records = _records(stack)
    latest = records[releases[0]["record_id"]]  # the service's newest is the target's record
    assert (latest.kind, latest.rollback_of) == ("rollback", promotion["record_id"])
    assert releases[0]["rollback_of"] == promotion["record_id"]
    assert {r["record_id"] for r in releases} <= set(records)
    assert stack.service.api("GET", f"promotions/{promotion['id']}")["state"] == "verified"
    # a rollback goes back, never forward: nothing older than the first release is left
    with pytest.raises(AssertionError, match=r"HTTP 409.*production has nothing to roll back to"):
        stack.service.api("POST", f"projects/{project_id}/environments/production/rollback",
                          role="release-manager", json={"reason": "again"})

    _roll_forward(stack, project_id, second, after=6)
    # GitLab's environment "Rollback": the first production pipeline's deploy job, run again
    with stack.checked_out(first_sha):  # a job runs on its pipeline's commit
        stack.run_triggered(first_production, jobs=("deploy-production",), user="qa")
    assert stack.answer("production").startswith("Welcome from production (version 1)")
    assert _running(stack, "production") == first
    rerun = stack.service.api("GET", "promotions", params={"environment": "production"})[0]
    assert (rerun["kind"], rerun["state"], rerun["pipeline_id"]) == (
        "rollback", "verified", first_production.id)
    _, releases = _production(stack)
    assert releases[0]["image"] == first and releases[0]["verified_at"]

    # no job log shows a credential
    logs = list((stack.repo.path / ".gitlab-ci-local" / "output").glob("*.log"))
    assert len(logs) >= 8
    assert not [log.name for log in logs
                if any(token in log.read_text() for token in stack.id_tokens)]


def test_a_git_tag_reuses_the_verified_image_and_deploys_nothing(stack):
    """The release commit was built, deployed and verified on main: its tag pipeline builds
    nothing and puts the release tags on that very digest."""
    pipelines_before = len(stack.gitlab.pipelines)
    verified = _running(stack, "staging")  # HEAD's image, verified in every environment
    log = stack.run(variables={"CI_PIPELINE_SOURCE": "push", "CI_COMMIT_BRANCH": "",
                               "CI_COMMIT_TAG": "v1.2.3", "CI_COMMIT_REF_NAME": "v1.2.3",
                               "CI_COMMIT_REF_SLUG": "v1-2-3"})
    image = stack.repo.dotenv("build", "build.env")["CD_IMAGE"]
    assert image == verified
    assert "was built before: reusing" in log and "+ docker build" not in log
    assert "the release tags go to" in log and "verified in test" in log
    digest = image.rsplit("@", 1)[1]
    for tag in ("1.2.3", "1.2", "1", "latest", "v1-2-3"):
        assert stack.registry_digest(tag) == digest, tag
    assert stack.image_state(image)["image"]["ref"] == "main"  # registered once, by main
    assert len(stack.gitlab.pipelines) == pipelines_before


def test_a_merge_request_builds_scans_and_gates_but_deploys_nothing(stack):
    pipelines_before = len(stack.gitlab.pipelines)
    serving = _running(stack, "test")
    sha = stack.push(change="mr")
    log = stack.run(variables={
        "CI_PIPELINE_SOURCE": "merge_request_event", "CI_COMMIT_BRANCH": "",
        "CI_MERGE_REQUEST_IID": "7", "CI_COMMIT_REF_NAME": "feature",
        "CI_COMMIT_REF_SLUG": "feature"})
    passed = set(re.findall(r"PASS\s+\[[^\]]*\]\s+(\S+)", log))
    # every environment's template checked, and the gate allowed the merge
    assert passed == {"template-check", "build", "register", "scan", "gate"}
    image = stack.repo.dotenv("build", "build.env")["CD_IMAGE"]
    state = stack.image_state(image)
    assert state["image"]["commit_sha"] == sha
    assert all(state[env]["deployment"] is None for env in ("test", "staging", "production"))
    assert _running(stack, "test") == serving
    assert len(stack.gitlab.pipelines) == pipelines_before
