"""Inputs of every step that talks to a registry: retries, and where credentials are found."""

from __future__ import annotations

from dataclasses import dataclass

from steps.images.credentials import CredentialStore
from steps.runtime.inputs import Input, option

RETRIES = Input("Retries of a transient registry failure (5xx, connection reset), with "
                "backoff.", env=("CD_RETRIES",), default=3)
PLAIN_HTTP = Input("Registries reached over plain HTTP (loopback ones always are).",
                   env=("CD_PLAIN_HTTP_REGISTRIES",), default=(), metavar="HOST")


@dataclass(frozen=True)
class RegistryAuth:
    """Where a step finds registry credentials (see steps.images.credentials)."""

    registry: str | None = option("Registry host the CI system logs in to.",
                                  env=("CD_REGISTRY", "CI_REGISTRY"))
    registry_user: str | None = option("User for --registry.",
                                       env=("CD_REGISTRY_USER", "CI_REGISTRY_USER"))
    registry_password: str | None = option(
        "Password or token for --registry.", env=("CD_REGISTRY_PASSWORD", "CI_REGISTRY_PASSWORD"),
        secret=True)
    docker_auth_config: str | None = option(
        "Docker config JSON with registry credentials.", env=("DOCKER_AUTH_CONFIG",),
        secret=True, metavar="JSON")
    docker_config: str | None = option("Directory holding the Docker config.json.",
                                       env=("DOCKER_CONFIG",), metavar="DIR")

    def store(self) -> CredentialStore:
        """The places these inputs name, in the order credentials are looked for."""
        return CredentialStore(registry=self.registry, registry_user=self.registry_user,
                               registry_password=self.registry_password,
                               docker_auth_config=self.docker_auth_config,
                               docker_config=self.docker_config)
