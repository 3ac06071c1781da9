"""`docker-cd push`: local tags into a real registry, the registry's digest, refused
credentials, an unreachable registry, and no secret in anything printed."""

import base64
import subprocess
import sys
import uuid

import pytest

from steps.cli import run
from tests.conftest import REGISTRY_PASSWORD, REGISTRY_USER
from tests.steps.registry_helpers import manifest_digest
from tests.support import free_port, read_dotenv

pytestmark = pytest.mark.docker

SHA = "fedcba9876543210fedcba9876543210fedcba98"


@pytest.fixture
def local_image(docker, images):
    """Tag a built image into a registry's repository name; untag what was added afterwards."""
    added = []

    def tag_as(registry_host, *tags, name=None):
        repository = f"{registry_host}/push/{name or uuid.uuid4().hex[:8]}"
        image = docker.images.get(images.build(filler_mb={"data": 1}))
        for tag in tags:
            image.tag(repository, tag)
            added.append(f"{repository}:{tag}")
        return repository

    yield tag_as
    for ref in added:
        docker.images.remove(ref, force=True)


def push(argv, env, capsys, tmp_path):
    code = run(["push", *argv, "--dotenv", str(tmp_path / "out.env")], env)
    return code, capsys.readouterr().err, read_dotenv(tmp_path / "out.env")


def test_push_default_tags_and_report_the_registry_digest(local_image, registry, capsys,
                                                          tmp_path):
    repository = local_image(registry.host, SHA, "main")
    env = {"CI_REGISTRY_IMAGE": repository, "CI_COMMIT_SHA": SHA, "CI_COMMIT_REF_SLUG": "main"}
    code, err, out = push([], env, capsys, tmp_path)
    assert code == 0, err
    name = repository.split("/", 1)[1]
    digest = manifest_digest(registry, name, SHA)
    assert manifest_digest(registry, name, "main") == digest
    assert out == {"CD_IMAGE": f"{repository}@{digest}", "CD_IMAGE_REPOSITORY": repository,
                   "CD_IMAGE_DIGEST": digest, "CD_IMAGE_TAGS": f"{SHA},main"}
    assert f"+ docker push {repository}:{SHA}" in err
    assert "Pushed" in err


def test_push_with_ci_registry_credentials(local_image, auth_registry, capsys, tmp_path):
    repository = local_image(auth_registry.host, "v1")
    env = {"CI_REGISTRY": auth_registry.host, "CI_REGISTRY_USER": REGISTRY_USER,
           "CI_REGISTRY_PASSWORD": REGISTRY_PASSWORD, "CD_IMAGE_REPOSITORY": repository}
    code, err, out = push(["--tag", "v1"], env, capsys, tmp_path)
    assert code == 0, err
    assert out["CD_IMAGE_DIGEST"] == manifest_digest(auth_registry, repository.split("/", 1)[1],
                                                     "v1")


def test_wrong_credentials_exit_2_naming_the_registry(local_image, auth_registry, capsys,
                                                      tmp_path):
    repository = local_image(auth_registry.host, "v1")
    env = {"CI_REGISTRY": auth_registry.host, "CI_REGISTRY_USER": REGISTRY_USER,
           "CI_REGISTRY_PASSWORD": "wrong-password", "CD_IMAGE_REPOSITORY": repository}
    code, err, _ = push(["--tag", "v1"], env, capsys, tmp_path)
    assert code == 2  # not worth a retry: the password must change
    assert (f"Error: registry {auth_registry.host} refused the credentials for user "
            f"{REGISTRY_USER!r}") in err
    assert "retrying" not in err
    assert "wrong-password" not in err


def test_unreachable_registry_exit_3_after_retries(local_image, capsys, tmp_path):
    host = f"127.0.0.1:{free_port()}"
    repository = local_image(host, "v1")
    code, err, _ = push(["--tag", "v1", "--retries", "1", "--image-repository", repository], {},
                        capsys, tmp_path)
    assert code == 3
    assert f"Error: registry {host}: pushing {repository}:v1 failed after 2 attempts" in err
    assert "connection refused" in err
    assert "retrying" in err


def test_missing_local_image_is_a_usage_error(registry, capsys, tmp_path):
    repository = f"{registry.host}/push/never-built"
    code, err, _ = push(["--tag", "v1", "--image-repository", repository], {}, capsys, tmp_path)
    assert code == 2
    assert f"there is no local image {repository}:v1" in err


@pytest.mark.parametrize(("env", "message"), [
    ({}, "--image-repository (CD_IMAGE_REPOSITORY, CI_REGISTRY_IMAGE): the image repository "
         "is required"),
    ({"CI_REGISTRY_IMAGE": "reg.example.com/g/app"}, "no tag: give --tag"),
    ({"CI_REGISTRY_IMAGE": "reg.example.com/g/app:v1", "CI_COMMIT_SHA": SHA},
     "--image-repository (from CI_REGISTRY_IMAGE): give the repository without a tag"),
])
def test_usage_errors_name_the_option(env, message, capsys, tmp_path):
    code, err, _ = push([], env, capsys, tmp_path)
    assert code == 2
    assert message in err


def test_no_secret_in_any_byte_printed(local_image, auth_registry, tmp_path):
    """Push as a CI job does, with the right and a wrong password and --debug: no form of the
    password or basic auth header appears in stdout or stderr."""
    repository = local_image(auth_registry.host, "v1")
    for password in (REGISTRY_PASSWORD, REGISTRY_PASSWORD + "-wrong"):
        pair = f"{REGISTRY_USER}:{password}"
        forbidden = [password, pair, base64.b64encode(password.encode()).decode(),
                     base64.b64encode(pair.encode()).decode()]
        env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
               "CI_REGISTRY": auth_registry.host, "CI_REGISTRY_USER": REGISTRY_USER,
               "CI_REGISTRY_PASSWORD": password, "CD_IMAGE_REPOSITORY": repository}
        done = subprocess.run([sys.executable, "-m", "steps", "push", "--tag", "v1", "--debug"],
                              env=env, capture_output=True, check=False)
        printed = done.stdout + done.stderr
        assert done.returncode == (0 if password == REGISTRY_PASSWORD else 2), printed
        for secret in forbidden:
            assert secret.encode() not in printed
