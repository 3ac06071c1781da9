"""deploy and verify reporting to the real promotion service (a real process)."""

from __future__ import annotations

import json

import pytest

from steps.cli import run
from tests.steps.deploy_sample import build_sample, remove_project

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def pushed(docker, images, registry, tmp_path_factory):
    """The sample, its v1 and v2 web images pushed so that they are named by digest (v1's)."""
    sample = build_sample(images, tmp_path_factory.mktemp("app") / "deploy", ("test",))
    repository = f"{registry.host}/team/app"
    by_digest = {}
    for version in ("v1", "v2"):
        docker.images.get(sample.images[version]).tag(repository, version)
        images.built.append(f"{repository}:{version}")
        docker.images.push(repository, version)
        [by_digest[version]] = [
            d for d in docker.images.get(f"{repository}:{version}").attrs["RepoDigests"]
            if d.startswith(repository + "@")]
    sample.images.update({f"{v}@": d for v, d in by_digest.items()})
    yield sample, by_digest["v1"]
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


def register(service, image):
    repository, digest = image.split("@")
    service.api("POST", "images", role="ci",
                json={"repository": repository, "digest": digest, "project": "team/app"})


def test_a_deployment_that_fails_after_it_started_is_reported_failed_with_why(
        service, pushed, capsys):
    sample, image = pushed
    missing = image.split("@")[0] + "@sha256:" + "0" * 63 + "1"  # registered, never pushed
    register(service, missing)
    env = {**sample.env("test"), "CD_IMAGE": missing, "CD_SERVICE_URL": service.url,
           "CD_SERVICE_TOKEN": service.tokens["ci"]}
    assert run(["deploy", "--environment", "test"], env) != 0
    assert "Reported deployment failed to the promotion service" in capsys.readouterr().err
    [image_row] = service.api("GET", "images", params={"digest": missing.split("@")[1]})
    detail = service.api("GET", f"images/{image_row['id']}")
    [test] = [e for e in detail["environments"] if e["environment"] == "test"]
    assert test["deployment"]["state"] == "failed"  # not `started` for ever
    failed = [e for e in audit(service, "deployment.updated") if e["after"]["state"] == "failed"]
    assert "manifest unknown" in failed[-1]["after"]["message"]  # the reason, as the step says


def test_the_rollback_job_asks_the_service_and_both_histories_agree(service, pushed, tmp_path):
    sample, _ = pushed
    env = {**sample.env("test"), "CD_SERVICE_URL": service.url,
           "CD_SERVICE_TOKEN": service.tokens["ci"], "CI_PROJECT_PATH": "team/app",
           "CI_PIPELINE_ID": "77"}
    for version in ("v1", "v2"):
        register(service, sample.images[f"{version}@"])
        step_env = {**env, "CD_IMAGE": sample.images[f"{version}@"]}
        assert run(["deploy", "--environment", "test"], step_env) == 0
        assert run(["verify", "--environment", "test"], step_env) == 0
    assert sample.get("test").strip() == "version 2"
    out = tmp_path / "rollback.json"
    assert run(["rollback", "--environment", "test", "--json", str(out)], env) == 0
    assert sample.get("test").strip() == "version 1"
    rollback = json.loads(out.read_text())
    [project] = [p for p in service.api("GET", "projects") if p["path"] == "team/app"]
    service_releases = service.api("GET", f"projects/{project['id']}/environments/test/releases")
    service_ids = [r["record_id"] for r in service_releases]
    target = tmp_path / "releases.json"
    assert run(["releases", "--environment", "test", "--json", str(target)], env) == 0
    target_ids = [r["id"] for r in json.loads(target.read_text())["releases"]]
    # the releases that went live, by the same ids, in the same order, on both sides
    assert [i for i in target_ids if i in service_ids] == service_ids
    v1 = next(r for r in service_releases
              if r["image"] == sample.images["v1@"] and not r["rollback_of"])
    assert service_releases[0]["record_id"] == rollback["release"]["id"]
    assert service_releases[0]["rollback_of"] == rollback["restored"] == v1["record_id"]
    claim = audit(service, "promotion.claimed")[0]
    assert (claim["after"]["kind"], claim["after"]["pipeline_id"]) == ("rollback", 77)
