"""The shared test infrastructure itself: engine, registries, busybox and Debian images."""

import requests

from tests.conftest import REGISTRY_PASSWORD, REGISTRY_USER
from tests.debian_images import debian_base_image, wheelhouse


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


def test_project_installs_offline_into_a_debian_image(docker):
    base = debian_base_image(docker)
    wheels = wheelhouse("postgres")
    script = ("python3 -m venv /opt/cd && /opt/cd/bin/pip install -q --no-index "
              "--find-links /wheels 'docker-cd[postgres]' && /opt/cd/bin/docker-cd --help")
    out = docker.containers.run(base, ["sh", "-c", script], network_mode="none", remove=True,
                                volumes={str(wheels): {"bind": "/wheels", "mode": "ro"}})
    assert b"usage: docker-cd <step>" in out
