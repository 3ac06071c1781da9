"""A one-node swarm for tests and benchmarks, the sample's port-holding proxy layout, and
removal of what a swarm deploy created."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

# The sample (tests/steps/deploy_sample.py) with web's host port held by a proxy service that
# forwards each connection to `web` by DNS (busybox nc here; nginx, HAProxy or Traefik in real
# life). web publishes no port, so the swarm target updates it start-first.
PROXY_OVERLAY = """\
services:
  front:
    image: ${FRONT_IMAGE:?set FRONT_IMAGE}
    command: ["nc", "-ll", "-p", "8080", "-e", "nc", "web", "8080"]
    ports: ["${WEB_PORT:?set WEB_PORT}:8080"]
"""


@contextmanager
def one_node_swarm(client) -> Iterator[bool]:
    """Make the engine a one-node swarm for the block; yields whether this call created it.

    Initialised (advertising 127.0.0.1) only when the engine is in no swarm, and left at the end
    only if initialised here: the engine is shared with other tests.
    """
    state = (client.info().get("Swarm") or {}).get("LocalNodeState")
    if state not in ("active", "inactive"):
        raise RuntimeError(f"the engine's swarm is {state!r}; expected active or inactive")
    created = state == "inactive"
    if created:
        client.swarm.init(advertise_addr="127.0.0.1", listen_addr="127.0.0.1:2377")
    try:
        yield created
    finally:
        if created:
            client.swarm.leave(force=True)


def remove_swarm_project(client, project: str) -> None:
    """Remove every service, config, secret, network and volume labelled with the project."""
    label = {"label": f"io.docker-cd.project={project}"}
    for service in client.api.services(filters=label):
        client.api.remove_service(service["ID"])
    deadline = time.monotonic() + 30  # tasks' containers go away asynchronously
    while client.api.containers(all=True, filters=label) and time.monotonic() < deadline:
        time.sleep(0.2)
    for config in client.api.configs(filters=label):
        client.api.remove_config(config["ID"])
    for secret in client.api.secrets(filters=label):
        client.api.remove_secret(secret["ID"])
    for network in client.api.networks(filters=label):
        client.api.remove_network(network["Id"])
    for volume in client.api.volumes(filters=label).get("Volumes") or []:
        client.api.remove_volume(volume["Name"], force=True)
