"""A service behind a proxy service that holds the host port, on a real one-node swarm: the
service publishes no port, so it is updated and rolled back start-first (the new task serves
beside the old one) and no request fails, whatever the outcome of the release."""

from __future__ import annotations

import pytest

from steps import cli
from tests.steps.deploy_sample import Poller, build_sample
from tests.steps.swarm_support import PROXY_OVERLAY, remove_swarm_project

pytestmark = [pytest.mark.docker, pytest.mark.swarm]


@pytest.fixture(scope="module")
def app(swarm, images, tmp_path_factory):
    sample = build_sample(images, tmp_path_factory.mktemp("handover") / "deploy",
                          environments=("test",))
    (sample.directory / "compose.test.yml").write_text(PROXY_OVERLAY)
    sample.front = images.build(tag=f"{sample.project}/front:1")  # busybox: nc
    yield sample
    remove_swarm_project(swarm, sample.project)


def run(capsys, app, step: str, image: str = "v1") -> tuple[int, str]:
    env = {**app.env("test", image), "CD_DEPLOY_TARGET": "swarm", "FRONT_IMAGE": app.front}
    code = cli.run([step, "--environment", "test"], env)
    return code, capsys.readouterr().err


def test_updates_and_rollbacks_behind_a_proxy_fail_no_request(capsys, swarm, app):
    code, log = run(capsys, app, "deploy")
    assert code == 0, log
    assert app.get("test") == "version 1\n"
    web = swarm.api.inspect_service(f"{app.project}-test_web")["Spec"]
    assert web["UpdateConfig"]["Order"] == "start-first"

    with Poller(app.url("test")) as good:
        code, log = run(capsys, app, "deploy", image="v2")
    assert code == 0, log
    assert app.get("test") == "version 2\n"
    assert good.failed == 0 and good.bodies[0] == "version 1"

    with Poller(app.url("test")) as failed:
        code, log = run(capsys, app, "deploy", image="bad")
    assert code == 1, log
    assert "Error: release" in log and "health check failed" in log
    assert failed.failed == 0 and failed.bodies == ["version 2"]

    with Poller(app.url("test")) as rollback:
        code, log = run(capsys, app, "rollback")
    assert code == 0, log
    assert app.get("test") == "version 1\n"
    assert rollback.failed == 0
