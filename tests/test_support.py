"""The shared test infrastructure itself: engine, registries, busybox images."""

import requests

from tests.conftest import REGISTRY_PASSWORD, REGISTRY_USER


def test_busybox_image_runs_a_shell(docker, images):
    tag = images.build(dockerfile='CMD ["sh", "-c", "echo hello from busybox"]')
    out = docker.containers.run(tag, remove=True)
    assert out.strip() == b"hello from busybox"


def test_plain_registry_accepts_a_push(docker, images, registry):
    tag = images.build()
    target = f"{registry.host}/support/plain:v1"
    docker.images.get(tag).tag(target)
    images.built.append(target)
    docker.images.push(target)
    tags = requests.get(f"{registry.url}/v2/support/plain/tags/list", timeout=10).json()["tags"]
    assert tags == ["v1"]


def test_auth_registry_refuses_anonymous_and_accepts_the_user(auth_registry):
    assert requests.get(f"{auth_registry.url}/v2/", timeout=10).status_code == 401
    ok = requests.get(f"{auth_registry.url}/v2/", auth=(REGISTRY_USER, REGISTRY_PASSWORD),
                      timeout=10)
    assert ok.status_code == 200
