"""Tearing an environment down on a swarm: its services, configs, secrets, release records and
overlay networks go; its volumes stay unless asked (and then only on the node DOCKER_HOST
names: swarm keeps no list of the volumes its tasks made on other nodes)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from steps.runtime.errors import ExternalError
from steps.runtime.log import Log
from steps.targets import LABEL_ENVIRONMENT, LABEL_PROJECT, LABEL_ROLE, label_filter

TASKS_GONE_TIMEOUT = 60.0  # configs, secrets and networks stay in use until the tasks are gone


def teardown(api: Any, project: str, environment: str, volumes: bool, log: Log,
             poll: float = 0.2) -> dict[str, list[str]]:
    """Remove the stack of (project, environment); the names of what went."""
    import docker.errors

    scope = label_filter({LABEL_PROJECT: project, LABEL_ENVIRONMENT: environment})
    removed: dict[str, list[str]] = {"services": [], "configs": [], "secrets": [],
                                     "networks": [], "volumes": [], "kept_volumes": []}
    services = api.services(filters=scope)
    for service in services:
        log.command(["docker", "service", "rm", service["Spec"]["Name"]])
        api.remove_service(service["ID"])
        removed["services"].append(service["Spec"]["Name"])
    deadline = time.monotonic() + TASKS_GONE_TIMEOUT
    # The tasks' containers go asynchronously (those on this node are the ones to wait for).
    while services and api.containers(all=True, filters=scope):
        if time.monotonic() > deadline:
            raise ExternalError(f"the tasks of {environment} were still running "
                                f"{TASKS_GONE_TIMEOUT:.0f}s after their services were removed")
        time.sleep(poll)
    for kind, listing, remove in (("config", api.configs, api.remove_config),
                                  ("secret", api.secrets, api.remove_secret)):
        for obj in listing(filters=scope):
            name = obj["Spec"]["Name"]
            log.command(["docker", kind, "rm", name])
            _until_free(lambda oid=obj["ID"], remove=remove: remove(oid), deadline, poll,
                        docker.errors.APIError)
            removed[kind + "s"].append(name)
    for network in api.networks(filters=scope):
        log.command(["docker", "network", "rm", network["Name"]])
        _until_free(lambda nid=network["Id"]: api.remove_network(nid), deadline, poll,
                    docker.errors.APIError)
        removed["networks"].append(network["Name"])
    for volume in api.volumes(filters=scope).get("Volumes") or []:
        if (volume.get("Labels") or {}).get(LABEL_ROLE) != "volume" or not volumes:
            removed["kept_volumes"].append(volume["Name"])
            continue
        log.command(["docker", "volume", "rm", volume["Name"]])
        _until_free(lambda name=volume["Name"]: api.remove_volume(name), deadline, poll,
                    docker.errors.APIError)
        removed["volumes"].append(volume["Name"])
    return removed


def _until_free(remove: Callable[[], Any], deadline: float, poll: float,
                errors: type[Exception]) -> None:
    """Remove an object a task shutting down may still hold ("in use"), until the deadline."""
    while True:
        try:
            remove()
            return
        except errors as e:
            if "in use" not in str(e) or time.monotonic() > deadline:
                raise
        time.sleep(poll)
