"""The shared engine client: a working engine answers; a missing one is exit 3 naming it."""

import pytest

from steps.images.engine import docker_client
from steps.runtime.errors import ExternalError
from tests.support import free_port

pytestmark = pytest.mark.docker


def test_local_engine_answers(docker):
    assert docker_client().ping()


def test_engine_that_does_not_answer_is_an_outside_failure():
    host = f"tcp://127.0.0.1:{free_port()}"
    with pytest.raises(ExternalError, match=f"the Docker engine at {host} does not answer") as e:
        docker_client(host, timeout=5)
    assert e.value.exit_code == 3
