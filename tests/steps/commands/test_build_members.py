"""Members of a release built by their own jobs (issue 14): each pushed to its own repository
and written as CD_IMAGE_<NAME> alone; a member whose context did not change between two
commits reuses its image (a worker-only change does not rebuild the api).

Real builds on the engine from real git commits and a real registry.
"""

from __future__ import annotations

import contextlib
import shutil
import uuid

import pytest
from docker import errors as docker_errors

from steps.cli import run
from tests.steps.commands.test_build_once import _git
from tests.support import BUSYBOX, TEST_LABEL, read_dotenv

pytestmark = pytest.mark.docker

DOCKERFILE = """\
FROM scratch
COPY busybox /bin/busybox
COPY page /www/index.html
CMD ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"]
"""


@pytest.fixture
def repo(tmp_path):
    """An application with two images: services/api (Dockerfile) and services/worker
    (Dockerfile.worker), unique content so no builder cache is shared."""
    root = tmp_path / "app"
    for name, dockerfile in (("api", "Dockerfile"), ("worker", "Dockerfile.worker")):
        service = root / "services" / name
        service.mkdir(parents=True)
        shutil.copy(BUSYBOX, service / "busybox")
        (service / dockerfile).write_text(DOCKERFILE)
        (service / "page").write_text(f"{name} {uuid.uuid4().hex}\n")
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "one")
    return root


def test_each_member_is_pushed_by_digest_and_an_unchanged_one_is_reused(
        docker, registry, repo, tmp_path, capsys):
    base = f"{registry.host}/members/{uuid.uuid4().hex[:8]}"
    made: list[str] = []

    def build(name: str, dockerfile: str) -> tuple[int, str, dict[str, str]]:
        commit = _git(repo, "rev-parse", "HEAD")
        out = tmp_path / f"build-{name}.env"
        code = run(["build", "--push", "--member", name, "--context", f"services/{name}",
                    "--file", dockerfile, "--label", f"{TEST_LABEL}=1", "--dotenv", str(out)],
                   {"CI_REGISTRY_IMAGE": base, "CI_COMMIT_SHA": commit,
                    "CI_COMMIT_REF_SLUG": "main", "CD_BUILD_CONTEXT": str(repo)})
        log = capsys.readouterr().err
        found = read_dotenv(out) if out.exists() else {}
        made.extend(f"{base}/{name}:{t}" for t in (commit, "main"))
        return code, log, found

    try:
        with contextlib.chdir(repo):
            code, log, api = build("api", "Dockerfile")
            assert code == 0, log
            code, log, worker = build("worker", "Dockerfile.worker")
            assert code == 0, log
            assert set(api) == {"CD_IMAGE_API"} and set(worker) == {"CD_IMAGE_WORKER"}
            assert api["CD_IMAGE_API"].startswith(f"{base}/api@sha256:")
            assert worker["CD_IMAGE_WORKER"].startswith(f"{base}/worker@sha256:")

            (repo / "services" / "worker" / "page").write_text("worker, changed\n")
            _git(repo, "commit", "-q", "-am", "the worker changes")
            code, log, api2 = build("api", "Dockerfile")
            assert code == 0, log
            assert "built before from the same context" in log and "docker build" not in log
            # the new commit was not built before; its context was
            assert "its context was built before: reusing" in log
            assert api2 == api  # the same digest, not rebuilt
            code, log, worker2 = build("worker", "Dockerfile.worker")
            assert code == 0, log
            assert "docker build" in log
            assert worker2["CD_IMAGE_WORKER"] != worker["CD_IMAGE_WORKER"]
    finally:
        for ref in made:
            with contextlib.suppress(docker_errors.ImageNotFound):
                docker.images.remove(ref, force=True)


def test_a_member_name_that_cannot_be_a_service_is_exit_2(repo, capsys):
    code = run(["build", "--member", "Api!", "--context", str(repo / "services" / "api")],
               {"CI_REGISTRY_IMAGE": "127.0.0.1:5000/x", "CI_COMMIT_SHA": "a" * 40})
    assert code == 2
    assert "is not a member name" in capsys.readouterr().err
