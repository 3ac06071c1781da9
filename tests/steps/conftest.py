"""Fixtures for the step tests that need more than tests/conftest.py offers."""

from __future__ import annotations

import pytest

from tests.steps.swarm_support import one_node_swarm


@pytest.fixture(scope="session")
def swarm(docker):
    """A one-node Docker swarm on the local engine (left at the end only if made here)."""
    try:
        with one_node_swarm(docker):
            yield docker
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
