"""`docker-cd register` of a release of several images: the members from the build jobs'
CD_IMAGE_<NAME>, the template's third-party image pinned by the digest a real registry (with a
password) gives, the template hash, each built member's scan, CD_RELEASE_ID.

The service's client is the hand-written fake (tests/steps/commands/fake_service.py): these
tests check what register sends and how it reads the answer.
"""

from __future__ import annotations

import io
import json
import uuid

import pytest

from steps.commands import register
from steps.commands.inputs.pipeline import Pipeline
from steps.commands.inputs.registry import RegistryAuth
from steps.commands.inputs.service import Service
from steps.context import Context
from steps.runtime.errors import ExternalError, UsageError
from steps.runtime.log import Log
from tests.conftest import REGISTRY_PASSWORD, REGISTRY_USER
from tests.steps.commands.fake_service import FakeService
from tests.steps.registry_helpers import push_image
from tests.support import free_port

API = "registry.example.com/shop/api@sha256:" + "a1" * 32
WORKER = "registry.example.com/shop/worker@sha256:" + "b2" * 32
COMPOSE = """\
services:
  api:
    image: ${CD_IMAGE_API:?built by the pipeline}
    configs: [{source: settings, target: /etc/settings.txt}]
  worker:
    image: ${CD_IMAGE_WORKER}
  cache:
    image: CACHE
configs:
  settings:
    file: ./settings.txt
"""
SCAN = {"scan": {"counts": {"critical": 0, "high": 1}, "findings": [],
                 "scanner": {"name": "trivy", "version": "0.58.1"}}}


@pytest.fixture(scope="module")
def cache_image(docker, images, auth_registry):
    """A third-party image, by tag, in the registry that asks for a password: (tag, digest)."""
    repository = f"third-party-{uuid.uuid4().hex[:8]}/cache"
    local = images.build(dockerfile='CMD ["sleep", "3600"]')
    digest = push_image(docker, local, auth_registry, repository, "7.2")
    return f"{auth_registry.host}/{repository}:7.2", digest


def _template(tmp_path, cache: str, settings: str = "one\n"):
    directory = tmp_path / "deploy"
    directory.mkdir(exist_ok=True)
    (directory / "compose.yml").write_text(COMPOSE.replace("CACHE", cache))
    (directory / "compose.test.yml").write_text("services: {}\n")
    (directory / "settings.txt").write_text(settings)
    return directory


def _register(tmp_path, directory, environ, fake, auth_registry=None, auth=None, **extra):
    if auth is None and auth_registry is not None:
        auth = RegistryAuth(registry=auth_registry.host, registry_user=REGISTRY_USER,
                            registry_password=REGISTRY_PASSWORD)
    auth = auth or RegistryAuth()
    settings = register.Settings(
        template_dir=str(directory), auth=auth, retries=0,
        pipeline=Pipeline(commit_sha="c0ffee" * 6 + "abcd", pipeline_id="1234",
                          project_path="shop/app"),
        service=Service(service_url="http://service.test"), **extra)
    register.validate(settings)
    log = io.StringIO()
    ctx = Context(Log(stream=log), environ, process_environ={},
                  service=fake)  # type: ignore[arg-type]
    return register.execute(settings, ctx), log.getvalue()


def test_registers_every_member_the_pinned_third_party_image_and_each_scan(
        tmp_path, cache_image, auth_registry):
    cache, cache_digest = cache_image
    directory = _template(tmp_path, cache)
    for name in ("api", "worker"):
        (tmp_path / f"scan-{name}.json").write_text(json.dumps(SCAN))
    fake = FakeService({"id": 12, "digest": "sha256:" + "0" * 64}, {"id": 1}, {"id": 2})
    environ = {"CD_IMAGE_API": API, "CD_IMAGE_WORKER": WORKER, "CD_IMAGE_TAGS": "main",
               "CD_IMAGE_REPOSITORY": "registry.example.com/shop"}
    result, log = _register(tmp_path, directory, environ, fake, auth_registry,
                            scan_report=str(tmp_path / "scan-{name}.json"))
    (method, path, body), *scans = fake.requests
    assert (method, path) == ("POST", "releases")
    assert body["members"] == [
        {"name": "api", "repository": API.split("@")[0], "digest": API.split("@")[1],
         "built": True},
        {"name": "worker", "repository": WORKER.split("@")[0], "digest": WORKER.split("@")[1],
         "built": True},
        {"name": "cache", "repository": cache.rsplit(":", 1)[0], "digest": cache_digest,
         "built": False}]
    assert body["template_hash"].startswith("sha256:")
    assert (body["project"], body["commit_sha"], body["pipeline_id"]) == (
        "shop/app", "c0ffee" * 6 + "abcd", 1234)
    assert [(s[1], s[2]["repository"], s[2]["digest"], s[2]["counts"]) for s in scans] == [
        ("scans", API.split("@")[0], API.split("@")[1], {"critical": 0, "high": 1}),
        ("scans", WORKER.split("@")[0], WORKER.split("@")[1], {"critical": 0, "high": 1})]
    # the dotenv hands the pin on to the later jobs of the pipeline (deploy-test)
    assert result.outputs == {"CD_RELEASE_ID": "12",
                              "CD_IMAGE_CACHE": f"{cache.rsplit(':', 1)[0]}@{cache_digest}"}
    assert REGISTRY_PASSWORD not in log


def test_the_template_hash_changes_with_the_configuration_alone(tmp_path, cache_image,
                                                               auth_registry):
    cache, _ = cache_image
    environ = {"CD_IMAGE_API": API, "CD_IMAGE_WORKER": WORKER}
    hashes = []
    for settings in ("one\n", "one\n", "two\n"):
        fake = FakeService({"id": 1})
        _register(tmp_path, _template(tmp_path, cache, settings), environ, fake, auth_registry)
        hashes.append(fake.requests[0][2]["template_hash"])
    assert hashes[0] == hashes[1] != hashes[2]


def test_an_unreachable_third_party_registry_is_exit_3_naming_the_service_and_the_opt_out(
        tmp_path):
    directory = _template(tmp_path, f"127.0.0.1:{free_port()}/library/redis:7")
    environ = {"CD_IMAGE_API": API, "CD_IMAGE_WORKER": WORKER}
    with pytest.raises(ExternalError) as refused:
        _register(tmp_path, directory, environ, FakeService())
    assert "service cache: cannot pin" in refused.value.message
    assert "--unpinned cache" in refused.value.message
    fake = FakeService({"id": 3})
    result, _ = _register(tmp_path, directory, environ, fake, unpinned=("cache",))
    assert [m["name"] for m in fake.requests[0][2]["members"]] == ["api", "worker"]
    assert result.outputs == {"CD_RELEASE_ID": "3"}


@pytest.mark.parametrize(("environ", "extra", "message"), [
    ({"CD_IMAGE_API": API, "CD_IMAGE_WORKER": "registry.example.com/shop/worker:main"}, {},
     "CD_IMAGE_WORKER: 'registry.example.com/shop/worker:main' names no digest"),
    ({"CD_IMAGE_API": API, "CD_IMAGE_WROKER": WORKER}, {},
     "CD_IMAGE_WROKER: the template has no service wroker"),
    ({}, {"member": {"api": API, "Worker": WORKER}}, "--member Worker: 'Worker' is not a member"),
])
def test_a_bad_member_is_exit_2_naming_its_variable(tmp_path, environ, extra, message):
    directory = _template(tmp_path, "registry.example.com/cache@sha256:" + "c3" * 32)
    fake = FakeService()
    with pytest.raises(UsageError) as bad:
        _register(tmp_path, directory, environ, fake, **extra)
    assert message in bad.value.message
    assert fake.requests == []  # nothing registered


def test_one_scan_report_for_several_members_is_refused(tmp_path):
    directory = _template(tmp_path, "registry.example.com/cache@sha256:" + "c3" * 32)
    (tmp_path / "scan.json").write_text(json.dumps(SCAN))
    with pytest.raises(UsageError) as bad:
        _register(tmp_path, directory, {"CD_IMAGE_API": API, "CD_IMAGE_WORKER": WORKER},
                  FakeService(), scan_report=str(tmp_path / "scan.json"))
    assert "scan-{name}.json" in bad.value.message


def test_refused_credentials_for_a_third_party_image_are_exit_2_naming_the_user(
        tmp_path, cache_image, auth_registry):
    """No retry fixes a password: exit 2 (not 3), naming the user, and nothing registered."""
    cache, _ = cache_image
    directory = _template(tmp_path, cache)
    fake = FakeService()
    auth = RegistryAuth(registry=auth_registry.host, registry_user=REGISTRY_USER,
                        registry_password="not-" + REGISTRY_PASSWORD)
    with pytest.raises(UsageError) as refused:
        _register(tmp_path, directory, {"CD_IMAGE_API": API, "CD_IMAGE_WORKER": WORKER}, fake,
                  auth=auth)
    assert "service cache: cannot pin" in refused.value.message
    assert REGISTRY_USER in refused.value.message
    assert fake.requests == []


def test_a_missing_scan_report_registers_nothing(tmp_path):
    """A wrong --scan-report path is found before the release is posted, not after."""
    directory = _template(tmp_path, "registry.example.com/cache@sha256:" + "c3" * 32)
    (tmp_path / "scan-api.json").write_text(json.dumps(SCAN))
    fake = FakeService({"id": 5}, {"id": 1})
    with pytest.raises(UsageError) as bad:
        _register(tmp_path, directory, {"CD_IMAGE_API": API, "CD_IMAGE_WORKER": WORKER}, fake,
                  scan_report=str(tmp_path / "scan-{name}.json"))
    assert "scan-worker.json: cannot read the scan report" in bad.value.message
    assert fake.requests == []
