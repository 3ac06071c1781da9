"""deploy and verify reporting to the real promotion service (a gunicorn process)."""

from __future__ import annotations

import json

import pytest

from docker_cd_local.service import PromotionService
from steps.cli import run
from tests.steps.deploy_sample import build_sample, remove_project

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    svc = PromotionService.start(tmp_path_factory.mktemp("deploy-service"))
    yield svc
    svc.stop()


@pytest.fixture(scope="module")
def pushed(docker, images, registry, tmp_path_factory):
    """The sample, its v1 web image pushed so that it is named by digest."""
    sample = build_sample(images, tmp_path_factory.mktemp("app") / "deploy", ("test",))
    repository = f"{registry.host}/team/app"
    docker.images.get(sample.images["v1"]).tag(repository, "v1")
    images.built.append(f"{repository}:v1")
    docker.images.push(repository, "v1")
    [digest] = [d for d in docker.images.get(f"{repository}:v1").attrs["RepoDigests"]
                if d.startswith(repository + "@")]
    yield sample, digest
    remove_project(docker, sample.project)


def audit(service, action):
    return service.api("GET", "audit", params={"action": action})


def test_deploy_and_verify_are_reported(service, pushed, capsys, tmp_path):
    sample, image = pushed
    repository, digest = image.split("@")
    service.api("POST", "images", role="ci",
                json={"repository": repository, "digest": digest, "project": "team/app"})
    env = {**sample.env("test"), "CD_IMAGE": image, "CD_SERVICE_URL": service.url,
           "CD_SERVICE_TOKEN": service.tokens["ci"],
           "CI_JOB_URL": "https://gitlab.example.com/team/app/-/jobs/42"}
    assert run(["deploy", "--environment", "test"], env) == 0
    assert run(["verify", "--environment", "test"], env) == 0
    err = capsys.readouterr().err
    assert "Reported deployment succeeded to the promotion service" in err
    assert "Reported verification passed to the promotion service" in err
    assert service.tokens["ci"] not in err
    [recorded] = audit(service, "deployment.recorded")
    assert recorded["after"]["state"] == "started"
    assert recorded["after"]["environment"] == "test"
    [updated] = audit(service, "deployment.updated")
    assert updated["after"]["state"] == "succeeded"
    [verified] = audit(service, "verification.recorded")
    assert verified["after"]["passed"] is True
    out = tmp_path / "releases.json"
    assert run(["releases", "--environment", "test", "--json", str(out)], env) == 0
    [release] = json.loads(out.read_text())["releases"]
    assert release["images"]["web"] == image  # the digest, not the tag
    assert release["image"] == image
