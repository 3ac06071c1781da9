"""Fixtures every test may use: the Docker engine, real registries, busybox images.

Tests that need the engine fail loudly when it does not answer: they are never skipped.
"""

from __future__ import annotations

import pytest

from tests.support import ImageFactory, Registry, docker_client, start_registry

# Fixtures that mean a test needs a real outside part; such tests get the marker of that name,
# so `-m "not docker"` selects the unit tests.
_MARKING_FIXTURES = {"docker": "docker", "images": "docker", "swarm": "swarm",
                     "postgres_url": "postgres"}

REGISTRY_USER = "ci-user"
REGISTRY_PASSWORD = "s3cret-Registry-Pa55"


@pytest.fixture(scope="session")
def docker():
    """A docker-py client for the local engine."""
    try:
        return docker_client()
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture(scope="session")
def registry() -> Registry:
    """A registry without auth on a free 127.0.0.1 port, for the whole session."""
    reg = start_registry()
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def auth_registry() -> Registry:
    """A registry with htpasswd basic auth (REGISTRY_USER / REGISTRY_PASSWORD)."""
    reg = start_registry(REGISTRY_USER, REGISTRY_PASSWORD)
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def images(docker) -> ImageFactory:
    """Builds busybox images FROM scratch; removes them at the end of the session."""
    factory = ImageFactory(docker)
    yield factory
    factory.cleanup()


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """An empty working directory to run a step in (it finds no project files there)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def pytest_collection_modifyitems(items):
    for item in items:
        for fixture, marker in _MARKING_FIXTURES.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(marker)
