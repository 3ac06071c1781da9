"""A deploy refused before it starts fails its promotion at once, with the step's reason
(real deploy step, real engine, the real promotion service).

Release A serves in staging. Release B is promoted there and its deploy job claims the
promotion; the deploy is then refused before anything starts (B's template is not the
checkout's, and no CD_RELEASE_COMMIT to restore it from). Before, the promotion stayed
`triggered` ("deploying" to whoever looks) until something else closed it; now it is `failed`
with the reason as soon as the step exits, the step's exit code is the same, and A still
serves. A refusal whose reason quotes a secret variable is reported masked.
"""

from __future__ import annotations

import uuid

import pytest

from steps.cli import run
from steps.template import deploy_files_hash
from tests.steps.deploy_sample import build_sample, remove_project

pytestmark = pytest.mark.docker

PROJECT = "team/refused"
IN_FLIGHT = {"requested", "triggered"}


@pytest.fixture(scope="module")
def pushed(docker, images, registry, tmp_path_factory):
    """The sample (test and staging overlays), its v1 and v2 web images by digest."""
    sample = build_sample(images, tmp_path_factory.mktemp("refused") / "deploy")
    repository = f"{registry.host}/team/refused/web"
    for version in ("v1", "v2"):
        docker.images.get(sample.images[version]).tag(repository, version)
        images.built.append(f"{repository}:{version}")
        docker.images.push(repository, version)
        [sample.images[f"{version}@"]] = [
            d for d in docker.images.get(f"{repository}:{version}").attrs["RepoDigests"]
            if d.startswith(repository + "@")]
    yield sample
    remove_project(docker, sample.project)


def release(service, image: str, template_hash: str) -> int:
    """A release of the one web image, passed in test: staging promotes it (policy: auto)."""
    repository, digest = image.split("@")
    body = service.api("POST", "releases", role="ci", json={
        "project": PROJECT, "template_hash": template_hash, "commit_sha": "c0" * 20,
        "members": [{"name": "web", "repository": repository, "digest": digest}]})
    ref = {"release_id": body["id"], "environment": "test"}
    service.api("POST", "scans", role="ci", json={"repository": repository, "digest": digest,
                                                   "counts": {"critical": 0, "high": 0}})
    service.api("POST", "deployments", role="ci", json={**ref, "state": "succeeded"})
    service.api("POST", "verifications", role="ci", json={**ref, "passed": True})
    return body["id"]


def promotion_of(service, release_id: int) -> dict:
    [found] = [p for p in service.api("GET", "promotions", params={"environment": "staging"})
               if p["release_id"] == release_id]
    return service.api("GET", f"promotions/{found['id']}")


def job_env(service, sample, image: str, release_id: int, promotion: dict,
            **extra: str) -> dict[str, str]:
    """What the service's trigger and the deploy-staging job give the steps."""
    return {**sample.env("staging", **extra), "CD_IMAGE": image, "CD_IMAGE_WEB": image,
            "CD_UNPINNED": "db", "CD_RELEASE_ID": str(release_id),
            "CD_PROMOTION_ID": str(promotion["id"]), "CD_TARGET_ENVIRONMENT": "staging",
            "CI_PIPELINE_ID": str(600 + promotion["id"]), "CD_SERVICE_URL": service.url,
            "CD_SERVICE_TOKEN": service.tokens["ci"]}


def claim_and_deploy(env: dict[str, str], capsys) -> tuple[int, int, str]:
    """The deploy-staging job's script: claim, then deploy; (claim's exit, deploy's, log)."""
    claimed = run(["gate", "--environment", "staging", "--claim"], env)
    deployed = run(["deploy", "--environment", "staging"], env)
    return claimed, deployed, capsys.readouterr().err


@pytest.fixture(scope="module")
def serving(service, pushed):
    """Release A (v1, the checkout's template) deployed to staging and verified there."""
    sample = pushed
    image = sample.images["v1@"]
    release_a = release(service, image, deploy_files_hash(sample.directory))
    promotion = promotion_of(service, release_a)
    env = job_env(service, sample, image, release_a, promotion)
    assert run(["gate", "--environment", "staging", "--claim"], env) == 0
    assert run(["deploy", "--environment", "staging"], env) == 0
    service.api("POST", "verifications", role="ci", json={
        "release_id": release_a, "environment": "staging", "passed": True})
    assert sample.get("staging").strip() == "version 1"
    return sample


def test_a_deploy_refused_before_it_starts_fails_its_promotion_at_once(service, serving,
                                                                        capsys):
    sample = serving
    image = sample.images["v2@"]
    other_template = "sha256:" + "e" * 64  # registered from another commit's template
    release_b = release(service, image, other_template)
    promotion = promotion_of(service, release_b)
    assert promotion["state"] in IN_FLIGHT
    capsys.readouterr()

    claimed, deployed, log = claim_and_deploy(
        job_env(service, sample, image, release_b, promotion), capsys)

    assert claimed == 0, log
    assert deployed == 1, log  # the refusal's own exit code, unchanged
    assert f"holds the template {other_template}" in log
    after = service.api("GET", f"promotions/{promotion['id']}")
    assert after["state"] == "failed"  # at once, not `triggered` until something closes it
    assert f"holds the template {other_template}" in after["failure_message"]
    assert "CD_RELEASE_COMMIT" in after["failure_message"]  # what to do about it
    assert "Reported deployment failed to the promotion service" in log
    assert sample.get("staging").strip() == "version 1"  # the previous release serves
    [deployment] = [d for d in service.api("GET", "audit",
                                           params={"action": "deployment.recorded"})
                    if d["after"]["release_id"] == release_b
                    and d["after"]["environment"] == "staging"]
    assert deployment["after"]["state"] == "failed"  # never `started`: nothing was deployed
    assert deployment["after"]["record_id"] is None


def test_a_refusal_quoting_a_secret_is_reported_masked(service, serving, capsys):
    sample = serving
    image = sample.images["v2@"]
    release_c = release(service, image, deploy_files_hash(sample.directory))
    promotion = promotion_of(service, release_c)
    secret = "s3cr3t-port-value-42"  # a variable the project says holds a secret
    capsys.readouterr()

    claimed, deployed, log = claim_and_deploy(
        job_env(service, sample, image, release_c, promotion, WEB_PORT=secret,
                CD_SECRET_VARIABLES="WEB_PORT"), capsys)

    assert (claimed, deployed) == (0, 2), log  # a template value to fix
    after = service.api("GET", f"promotions/{promotion['id']}")
    assert after["state"] == "failed"
    assert "services.web.ports" in after["failure_message"]
    assert "[MASKED]" in after["failure_message"]
    assert secret not in after["failure_message"]
    audit = service.api("GET", "audit", params={"action": "deployment.recorded"})
    assert secret not in str(audit)
    assert sample.get("staging").strip() == "version 1"


def test_a_rollback_the_target_cannot_restore_fails_at_once(service, docker, capsys):
    """The service chose a verified release the target has no record of (the histories
    disagree): the rollback it recorded, and claimed for this pipeline, fails at once."""
    repository = "registry.example.com/team/rb/web"
    for n in (1, 2):
        ref = {"repository": repository, "digest": "sha256:" + f"{n:02x}" * 32}
        service.api("POST", "images", role="ci", json={**ref, "project": "team/rb"})
        service.api("POST", "deployments", role="ci", json={
            **ref, "environment": "test", "state": "succeeded", "record_id": f"rec-{n}"})
        service.api("POST", "verifications", role="ci", json={
            **ref, "environment": "test", "passed": True})
    env = {"CD_PROJECT": f"rb-{uuid.uuid4().hex[:8]}", "CD_SERVICE_URL": service.url,
           "CD_SERVICE_TOKEN": service.tokens["ci"], "CI_PROJECT_PATH": "team/rb",
           "CI_PIPELINE_ID": "88"}  # a project this engine never ran: no records at all

    assert run(["rollback", "--environment", "test"], env) == 1
    log = capsys.readouterr().err
    assert "nothing to roll back" in log
    [rollback] = [p for p in service.api("GET", "promotions", params={"environment": "test"})
                  if p["kind"] == "rollback" and p["pipeline_id"] == 88]
    assert rollback["state"] == "failed"  # not in flight for ever
    assert "nothing to roll back" in service.api(
        "GET", f"promotions/{rollback['id']}")["failure_message"]
