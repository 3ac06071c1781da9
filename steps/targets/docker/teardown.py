"""Tearing an environment down on one engine: its containers (services, network holders,
release records), networks and config/secret volumes go; its data volumes stay unless asked."""

from __future__ import annotations

import contextlib
from typing import Any

from steps.runtime.errors import ExternalError
from steps.runtime.log import Log
from steps.targets import LABEL_ENVIRONMENT, LABEL_PROJECT, LABEL_ROLE, label_filter

DERIVED_VOLUMES = ("config", "secret")  # files and secret environments: rebuilt by a deploy


def teardown(api: Any, project: str, environment: str, volumes: bool,
             log: Log) -> dict[str, list[str]]:
    """Remove what deploys made for (project, environment); the names of what went."""
    import docker.errors

    scope = label_filter({LABEL_PROJECT: project, LABEL_ENVIRONMENT: environment})
    removed: dict[str, list[str]] = {"containers": [], "networks": [], "volumes": [],
                                     "kept_volumes": []}
    try:
        for container in api.containers(all=True, filters=scope):
            name = container["Names"][0].lstrip("/")
            log.command(["docker", "rm", "--force", name])
            with contextlib.suppress(docker.errors.NotFound):
                api.remove_container(container["Id"], force=True)
            removed["containers"].append(name)
        for network in api.networks(filters=scope):
            log.command(["docker", "network", "rm", network["Name"]])
            api.remove_network(network["Id"])
            removed["networks"].append(network["Name"])
        for volume in api.volumes(filters=scope).get("Volumes") or []:
            role = (volume.get("Labels") or {}).get(LABEL_ROLE)
            if role not in DERIVED_VOLUMES and not volumes:
                removed["kept_volumes"].append(volume["Name"])
                continue
            log.command(["docker", "volume", "rm", volume["Name"]])
            api.remove_volume(volume["Name"])
            removed["volumes"].append(volume["Name"])
    except docker.errors.APIError as e:
        raise ExternalError(f"cannot tear {environment} down: {e.explanation or e}") from e
    return removed
