"""Fixtures for the step tests that need more than tests/conftest.py offers."""

from __future__ import annotations

import pytest

from docker_cd_local.service import PromotionService
from tests.steps.swarm_support import one_node_swarm


@pytest.fixture(scope="session")
def swarm(docker):
    """A one-node Docker swarm on the local engine (left at the end only if made here)."""
    try:
        with one_node_swarm(docker):
            yield docker
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """A promotion service process of the module's own, on a fresh SQLite database."""
    svc = PromotionService.start(tmp_path_factory.mktemp("service"))
    yield svc
    svc.stop()
