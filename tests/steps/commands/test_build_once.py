"""Built once: the pipelines of one commit (branch, merge request, tag) end with one image.

Real builds on the engine from real git checkouts, a real registry and the real promotion
service: a second pipeline of a commit reuses its image (found by the commit's tag, or through
the service) instead of building; a rebuild that cannot be avoided, from a fresh checkout, at
another time, without the builder's cache, gives the same digest; the release tags of a commit
go to its verified image.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from docker import errors as docker_errors

from steps.cli import run
from tests.steps.registry_helpers import manifest_digest
from tests.support import BUSYBOX, TEST_LABEL, read_dotenv

pytestmark = pytest.mark.docker

COMMITTED = "2024-05-01T12:00:00+00:00"
# The unique page comes first: no step is shared with another test's builder cache.
DOCKERFILE = """\
FROM scratch
COPY www /www
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN mkdir -p /var/app && echo built > /var/app/stamp
CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]
"""


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "dev", "GIT_AUTHOR_EMAIL": "dev@example.com",
           "GIT_COMMITTER_NAME": "dev", "GIT_COMMITTER_EMAIL": "dev@example.com",
           "GIT_AUTHOR_DATE": COMMITTED, "GIT_COMMITTER_DATE": COMMITTED}
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture
def origin(tmp_path):
    """An application's repository with one commit; unique content, so no cache is shared."""
    repo = tmp_path / "origin"
    (repo / "www").mkdir(parents=True)
    shutil.copy(BUSYBOX, repo / "busybox")
    (repo / "Dockerfile").write_text(DOCKERFILE)
    (repo / "www" / "index.html").write_text(f"build once {uuid.uuid4().hex}\n")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "the commit")
    return repo


def checkout(origin: Path, where: Path) -> tuple[Path, str]:
    """A fresh clone (every file's time is now), as a new CI job has; and the commit."""
    _git(origin.parent, "clone", "-q", str(origin), str(where))
    return where, _git(where, "rev-parse", "HEAD")


@pytest.fixture
def build(docker, capsys):
    """`docker-cd build --push` in a checkout; untags what it tagged afterwards."""
    made: list[str] = []

    def run_build(context: Path, env: dict[str, str]) -> tuple[int, str, dict[str, str]]:
        out_file = context.parent / f"{context.name}.env"
        code = run(["build", "--push", "--context", str(context), "--label",
                    f"{TEST_LABEL}=1", "--dotenv", str(out_file)], env)
        log = capsys.readouterr().err
        out = read_dotenv(out_file)
        if out:
            repository = out["CD_IMAGE_REPOSITORY"]
            made.extend(f"{repository}:{t}" for t in out["CD_IMAGE_TAGS"].split(","))
        return code, log, out

    yield run_build
    for ref in made:
        with contextlib.suppress(docker_errors.ImageNotFound):
            docker.images.remove(ref, force=True)


def pipeline(registry, commit: str, ref: str, repository: str | None = None, **extra: str):
    return {"CI_REGISTRY_IMAGE": repository or f"{registry.host}/once/app",
            "CI_COMMIT_SHA": commit, "CI_COMMIT_REF_SLUG": ref, **extra}


def test_a_second_pipeline_of_the_commit_reuses_its_image(build, origin, registry, tmp_path):
    repository = f"{registry.host}/once/{uuid.uuid4().hex[:8]}"
    branch, commit = checkout(origin, tmp_path / "branch-job")
    code, log, first = build(branch, pipeline(registry, commit, "main", repository))
    assert code == 0, log
    assert "+ docker build" in log

    tagged, _ = checkout(origin, tmp_path / "tag-job")  # the tag pipeline: another job, later
    code, log, second = build(tagged, pipeline(registry, commit, "v1-2-3", repository,
                                               CI_COMMIT_TAG="v1.2.3"))
    assert code == 0, log
    assert second["CD_IMAGE"] == first["CD_IMAGE"]
    assert f"reusing {first['CD_IMAGE']}" in log and "+ docker build" not in log
    name = repository.split("/", 1)[1]
    assert manifest_digest(registry, name, "v1-2-3") == first["CD_IMAGE_DIGEST"]


def test_a_rebuild_from_a_fresh_checkout_without_cache_gives_the_same_digest(
        build, docker, origin, registry, tmp_path):
    first_job, commit = checkout(origin, tmp_path / "first")
    code, log, first = build(first_job, pipeline(registry, commit, "main"))
    assert code == 0, log
    # nothing of that build stays on the engine: no image, no builder cache
    steps = list(dict.fromkeys(re.findall(r"---> ([0-9a-f]{12})\b", log)))
    for ref in (first["CD_IMAGE"], *reversed(steps)):
        with contextlib.suppress(docker_errors.ImageNotFound):
            docker.images.remove(ref, force=True)
    time.sleep(1.1)  # another second on the clock

    # the registry lost the commit's image (another repository): it must be built again
    other = f"{registry.host}/once/rebuilt-{uuid.uuid4().hex[:8]}"
    second_job, _ = checkout(origin, tmp_path / "second")
    code, log, second = build(second_job, pipeline(registry, commit, "main", other))
    assert code == 0, log
    assert "+ docker build" in log and "Using cache" not in log
    assert second["CD_IMAGE_DIGEST"] == first["CD_IMAGE_DIGEST"]
    labels = docker.images.get(second["CD_IMAGE"]).labels
    assert labels["org.opencontainers.image.created"] == "2024-05-01T12:00:00Z"  # the commit's


def _register(service, image: str, commit: str) -> None:
    repository, digest = image.split("@")
    service.api("POST", "images", role="ci", json={
        "project": "once/app", "repository": repository, "digest": digest, "commit_sha": commit})


def test_the_service_finds_the_commits_image_when_no_tag_names_the_commit(
        build, origin, registry, service, tmp_path):
    repository = f"{registry.host}/once/app/{uuid.uuid4().hex[:8]}"
    first_job, commit = checkout(origin, tmp_path / "first")
    code, log, first = build(first_job, pipeline(registry, commit, "main", repository,
                                                 CD_TAGS="nightly"))
    assert code == 0, log
    _register(service, first["CD_IMAGE"], commit)

    second_job, _ = checkout(origin, tmp_path / "second")
    code, log, second = build(second_job, pipeline(
        registry, commit, "main", repository, CD_TAGS="release-candidate",
        CD_SERVICE_URL=service.url, CD_SERVICE_TOKEN=service.tokens["ci"]))
    assert code == 0, log
    assert second["CD_IMAGE"] == first["CD_IMAGE"]
    assert "registered by the promotion service" in log and "+ docker build" not in log


def test_release_tags_go_to_the_commits_verified_image(docker, images, registry, service,
                                                      capsys):
    commit = uuid.uuid4().hex + uuid.uuid4().hex[:8]
    repository = f"{registry.host}/once/app/{uuid.uuid4().hex[:8]}"
    digests = {}
    for name in ("verified", "rebuilt"):  # two images of one commit, as before build-once
        local = images.build(files={"which": name}, dockerfile="COPY which /which")
        docker.images.get(local).tag(repository, name)
        docker.images.push(repository, name)
        docker.images.remove(f"{repository}:{name}")
        digests[name] = manifest_digest(registry, repository.split("/", 1)[1], name)
        _register(service, f"{repository}@{digests[name]}", commit)
    env = {"CD_SERVICE_URL": service.url, "CD_SERVICE_TOKEN": service.tokens["ci"],
           "CI_COMMIT_SHA": commit, "CI_COMMIT_TAG": "v1.2.3"}
    argv = ["tag", f"{repository}@{digests['rebuilt']}", "--scheme", "semver"]

    assert run(argv, env) == 1  # none verified: no release tags
    assert "was verified in any environment" in capsys.readouterr().err

    service.api("POST", "verifications", role="ci", json={
        "repository": repository, "digest": digests["verified"], "environment": "test",
        "passed": True})
    code = run(argv, env)
    log = capsys.readouterr().err
    assert code == 0, log
    for tag in ("1.2.3", "1.2", "1", "latest"):
        assert manifest_digest(registry, repository.split("/", 1)[1], tag) == digests["verified"]
    assert "verified in test" in log
