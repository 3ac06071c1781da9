"""Fixtures for the step tests that need more than tests/conftest.py offers."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def swarm(docker):
    """A one-node Docker swarm on the local engine.

    Initialised (advertising 127.0.0.1) only when the engine is not in a swarm already, and left
    at the end only if this fixture initialised it: the engine is shared with other tests.
    """
    state = (docker.info().get("Swarm") or {}).get("LocalNodeState")
    created = state == "inactive"
    if created:
        docker.swarm.init(advertise_addr="127.0.0.1", listen_addr="127.0.0.1:2377")
    elif state != "active":
        pytest.fail(f"the engine's swarm is {state!r}; expected active or inactive", pytrace=False)
    yield docker
    if created:
        docker.swarm.leave(force=True)
