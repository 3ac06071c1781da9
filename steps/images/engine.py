"""The Docker engine client the steps share, built once at the edge with errors wrapped.

docker-py is imported when a client is made, so steps that never touch the engine (tag) never
load it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from steps.runtime.errors import ExternalError


def docker_client(host: str | None = None, timeout: int = 300,
                  environment: Mapping[str, str] | None = None) -> Any:
    """A docker-py client for `host` that answers; None: docker-py's own reading of
    DOCKER_HOST, DOCKER_TLS_VERIFY and DOCKER_CERT_PATH (GitLab's TLS dind) from
    `environment`, else the socket."""
    import docker

    try:
        client = (docker.DockerClient(base_url=host, timeout=timeout) if host
                  else docker.from_env(timeout=timeout, environment=environment))
        client.ping()
    except Exception as e:  # docker-py raises DockerException, requests' errors, OSError
        where = host or "DOCKER_HOST or the local socket"
        raise ExternalError(f"the Docker engine at {where} does not answer: {e}") from e
    return client
