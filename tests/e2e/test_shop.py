"""examples/shop end to end: an application of several images delivered as one release.

The shop is an `api` and a `worker`, each built from its own Dockerfile, and `kv`, a
third-party key-value store the team does not build (pushed to the registry as
vendor/kv:1.0 before the pipeline, as a vendor's image), with a config file both services read
and a volume for kv's data. gitlab-ci-local runs its pipelines, each job in the runner image,
against the engine, a registry that wants a password, the promotion service (a real process)
and the GitLab API double, as tests/e2e/test_pipeline.py does for hello-app.

One test, in the order a team lives it: a release of both images goes to production (built,
scanned, registered once, deployed to test and verified; the service triggers staging with
every member's digest; QA approves production); a release where only the worker changed
(the api's digest is reused, not rebuilt); a release whose worker never becomes healthy (the
previous release keeps serving in full: both images, kv and the config); a good release after
it, then a rollback that restores every image and the config of the release before.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from docker_cd_local.pipelines import DockerExecutor, PipelineFailed
from docker_cd_local.stack import Stack
from docker_cd_local.vendor import push_vendor_image
from tests.runner_image import helper_image, runner_image
from tests.schemas import container_scanning_validator

pytestmark = [pytest.mark.e2e, pytest.mark.docker, pytest.mark.timeout(1800)]

BUILT = ("api", "worker")
MEMBERS = ("api", "kv", "worker")


@pytest.fixture(scope="module")
def stack(docker, tmp_path_factory):
    executor = DockerExecutor(runner_image(docker), helper_image(docker))
    stack = Stack.start(tmp_path_factory.mktemp("shop"), executor=executor,
                        app=Path(__file__).resolve().parents[2] / "examples" / "shop")
    yield stack
    stack.stop()


# ------------------------------------------------------------------ changing the shop

def _edit(stack: Stack, path: str, pattern: str, replacement: str) -> None:
    file = stack.repo.path / path
    text, count = re.subn(pattern, replacement, file.read_text(), flags=re.M)
    assert count == 1, f"{pattern!r} is not in {path}"
    file.write_text(text)


def _change(stack: Stack, api: str | None = None, worker: str | None = None,
            currency: str | None = None, worker_key: str = "worker") -> str:
    """Commit a change of the api's or worker's version, the config's currency, the key the
    worker reports under (an invalid one is the bug that keeps it from ever being healthy)."""
    if api:
        _edit(stack, "services/api/Dockerfile", r"^ENV API_VERSION=.*$", f"ENV API_VERSION={api}")
    if worker:
        _edit(stack, "services/worker/Dockerfile", r"^ENV WORKER_VERSION=.*$",
              f"ENV WORKER_VERSION={worker}")
    if currency:
        _edit(stack, "deploy/config/shop.conf", r"^currency: .*$", f"currency: {currency}")
    _edit(stack, "services/worker/bin/worker", r"^key=.*$", f"key={worker_key}")
    return stack.repo.commit(f"api {api} worker {worker} currency {currency}")


# ------------------------------------------------------------------ looking at the world

def _outputs(stack: Stack) -> dict[str, str]:
    """What the last run's build jobs (CD_IMAGE_<NAME> each) and its register job
    (CD_RELEASE_ID) exported."""
    found: dict[str, str] = {}
    artifacts = stack.repo.path / ".gitlab-ci-local" / "artifacts"
    for job in sorted(artifacts.iterdir()):
        if job.name.startswith(("build", "register")):
            for path in job.rglob("*.env"):
                found |= dict(line.split("=", 1) for line in path.read_text().splitlines()
                              if "=" in line)
    return found


def _running(stack: Stack, environment: str) -> dict[str, str]:
    """service -> repository@digest of the one container serving each service."""
    running = {}
    for service in MEMBERS:
        [container] = stack.containers(environment, service)
        [running[service]] = [name for name in container.image.attrs["RepoDigests"]
                              if name.startswith(f"{stack.registry.host}/")]
    return running


def _page(stack: Stack, environment: str) -> dict[str, str]:
    """The shop's page: api version and environment, the config, the worker's last report."""
    lines = stack.answer(environment).splitlines()
    api, config, report = lines[0], lines[1:-1], lines[-1]
    return {"api": api, "config": "\n".join(config), "worker": report}


def _wait_for_page(stack: Stack, environment: str, condition, timeout: float = 10) -> dict:
    """The page once `condition` holds (the worker reports every second)."""
    deadline = time.monotonic() + timeout
    while True:
        page = _page(stack, environment)
        if condition(page) or time.monotonic() > deadline:
            return page
        time.sleep(0.2)


def _release(stack: Stack, release_id: int | str) -> dict:
    return stack.service.api("GET", f"releases/{release_id}")


def _rollouts(stack: Stack, environment: str) -> list[dict]:
    """The service's history of an environment, newest first."""
    [project] = stack.service.api("GET", "projects")
    return stack.service.api(
        "GET", f"projects/{project['id']}/environments/{environment}/releases")


def _logs(stack: Stack) -> dict[str, str]:
    output = stack.repo.path / ".gitlab-ci-local" / "output"
    return {log.stem: log.read_text() for log in output.glob("*.log")}


# ------------------------------------------------------------------ the flow

def _to_test(stack: Stack, sha: str) -> dict[str, str]:
    """The branch pipeline of `sha`: both images built and scanned, one release registered,
    deployed to test and verified; returns the members (name -> repository@digest) and
    CD_RELEASE_ID."""
    stack.run_branch_pipeline()
    outputs = _outputs(stack)
    members = {name: outputs[f"CD_IMAGE_{name.upper()}"] for name in BUILT}
    release = _release(stack, outputs["CD_RELEASE_ID"])
    registered = {m["name"]: m for m in release["members"]}
    assert set(registered) == set(MEMBERS)
    for name in BUILT:
        repository, digest = members[name].rsplit("@", 1)
        assert repository == f"{stack.image_repository}/{name}"
        assert (registered[name]["repository"], registered[name]["digest"],
                registered[name]["built"]) == (repository, digest, True)
        assert stack.registry_digest(sha, f"{stack.project_path}/{name}") == digest
    # kv: named by tag in the template, pinned by the digest its registry gave at release time
    kv = registered["kv"]
    assert kv["built"] is False
    members["kv"] = f"{kv['repository']}@{kv['digest']}"
    assert members["kv"] == stack.vendor["kv"]
    assert release["commit_sha"] == sha

    # one container-scanning report per built member, each recorded by the service
    reports = list((stack.repo.path / ".gitlab-ci-local" / "artifacts").rglob(
        "gl-container-scanning-report*.json"))
    assert len(reports) == len(BUILT), reports
    for report in reports:
        container_scanning_validator().validate(json.loads(report.read_text()))
    for name in BUILT:
        scans = stack.service.api("GET", "audit", params={
            "action": "scan.recorded", "subject_id": str(registered[name]["image_id"])})
        assert scans, f"no scan of {name} recorded"

    assert _running(stack, "test") == members  # kv too: the digest the release pinned
    live = _rollouts(stack, "test")[0]
    assert live["release_id"] == release["id"] and live["verified_at"]
    assert release["template_hash"]
    return {**members, "release_id": release["id"], "commit_sha": sha,
            "template_hash": release["template_hash"]}


def _to_production(stack: Stack, release: dict, pipelines_before: int) -> None:
    """The service triggers staging with every member; QA approves; QA plays production."""
    staging = stack.wait_for_pipeline("staging", after=pipelines_before)
    assert staging.variables == {
        "CD_RELEASE_ID": str(release["release_id"]),
        "CD_RELEASE_COMMIT": release["commit_sha"],
        "CD_RELEASE_TEMPLATE_HASH": release["template_hash"],
        **{f"CD_IMAGE_{name.upper()}": release[name] for name in MEMBERS},
        "CD_TARGET_ENVIRONMENT": "staging",
        "CD_PROMOTION_ID": staging.variables["CD_PROMOTION_ID"],
    }
    for name in BUILT:  # as on another runner: staging pulls them, with the job's credentials
        stack.untag(release[name])
    stack.run_triggered(staging)
    assert _running(stack, "staging") == {name: release[name] for name in MEMBERS}

    assert len(stack.gitlab.pipelines) == pipelines_before + 1  # production waits for QA
    stack.approve(release["release_id"], "production")
    production = stack.wait_for_pipeline("production", after=pipelines_before + 1)
    assert production.variables["CD_RELEASE_ID"] == str(release["release_id"])
    stack.run_triggered(production, manual=("deploy-production",), user="qa")
    assert _running(stack, "production") == {name: release[name] for name in MEMBERS}
    assert _rollouts(stack, "production")[0]["release_id"] == release["release_id"]


def test_the_shop_goes_to_production_as_one_release_and_rolls_back_as_one(stack):
    # 1. both images built, scanned, one release, test, staging, production
    first = _to_test(stack, stack.repo.head)
    page = _page(stack, "test")
    assert page["api"] == "shop api 1 in test"
    assert page["config"] == "currency: EUR\nbatch: 1"
    assert page["worker"].startswith("worker 1: ")
    _to_production(stack, first, pipelines_before=0)
    assert _page(stack, "production")["api"] == "shop api 1 in production"

    # 2. only the worker changes: the api's image is the one built before, not rebuilt
    sha = _change(stack, worker="2")
    second = _to_test(stack, sha)
    assert second["api"] == first["api"] and second["worker"] != first["worker"]
    assert second["release_id"] != first["release_id"]
    [api_build] = [log for job, log in _logs(stack).items()
                   if job.startswith("build") and "api" in job]
    assert "reusing" in api_build and "+ docker build" not in api_build
    page = _wait_for_page(stack, "test", lambda page: page["worker"].startswith("worker 2: "))
    assert page["worker"].startswith("worker 2: ")
    _to_production(stack, second, pipelines_before=2)

    # the vendor moves kv:1.0 to another build; the releases keep the digest they pinned
    moved = push_vendor_image(stack.repo.path / "vendor" / "kv", stack.registry, change="1.0-2")
    assert moved != first["kv"]

    # 3. a new api, a new config and a worker that never becomes healthy: the whole release
    # is refused, and test keeps running the previous one in full
    _change(stack, api="3", currency="CHF", worker_key="Worker")
    with pytest.raises(PipelineFailed) as failed:
        stack.run_branch_pipeline()
    assert re.search(r"worker-1-\S+ is unhealthy", failed.value.log)
    assert _running(stack, "test") == {name: second[name] for name in MEMBERS}
    page = _page(stack, "test")
    assert page["api"] == "shop api 1 in test" and "currency: EUR" in page["config"]
    assert _rollouts(stack, "test")[0]["release_id"] == second["release_id"]

    # 4. the worker fixed: the release reaches test, kv pinned at the vendor's new build
    stack.vendor["kv"] = moved
    sha = _change(stack, api="3", currency="CHF", worker="4")
    fourth = _to_test(stack, sha)
    assert fourth["api"] != second["api"] and fourth["kv"] == moved
    page = _page(stack, "test")
    assert page["api"] == "shop api 3 in test" and "currency: CHF" in page["config"]

    # 5. one click on rollback-test: back to the release verified before it, every image
    # (the api's, the worker's, the kv the vendor has since moved) and the config together
    stack.run(jobs=("rollback-test",), variables={"CI_PIPELINE_SOURCE": "push"},
              environment="test", user="qa")
    assert _running(stack, "test") == {name: second[name] for name in MEMBERS}
    page = _wait_for_page(stack, "test", lambda page: page["worker"].startswith("worker 2: "))
    assert page["api"] == "shop api 1 in test" and "currency: EUR" in page["config"]
    assert _rollouts(stack, "test")[0]["release_id"] == second["release_id"]
    # kv's data stayed on its volume through every release
    [kv] = stack.containers("test", "kv")
    assert [m["Name"] for m in kv.attrs["Mounts"] if m["Destination"] == "/data"] == [
        f"{stack.project}-test_kv-data"]
    # production still runs the second release
    assert _running(stack, "production") == {name: second[name] for name in MEMBERS}
