"""The Docker engine client the steps share, built once at the edge with errors wrapped, and
the engine's registry answers turned into the steps' errors.

docker-py is imported when a client is made, so steps that never touch the engine (tag) never
load it.

Credentials: docker-py sends the engine registry credentials (pulls, pushes, swarm service
create/update: `--with-registry-auth`, build's base images) from the Docker config file it
reads. `use_credentials` replaces that with docker-cd's own chain (steps.images.credentials),
so the engine is given exactly what every other step uses, with or without a config file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from steps.images.credentials import Credentials, needs_credentials, refused
from steps.runtime.errors import ExternalError, UsageError
from steps.runtime.retry import Transient

Lookup = Callable[[str], "Credentials | None"]

_REFUSED = ("unauthorized", "authentication required", "no basic auth credentials", "denied",
            "incorrect username or password", "401 unauthorized")
_MISSING = ("manifest unknown", "not found", "does not exist", "name unknown",
            "no such image", "blob unknown", "unknown blob")
_TRANSIENT = ("connection refused", "connection reset", "no such host", "i/o timeout",
              "timeout", "eof", "unexpected http status: 5", "toomanyrequests",
              "service unavailable", "bad gateway", "broken pipe", "500 internal server error",
              "503 service unavailable", "502 bad gateway")


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
        where = host or (environment or {}).get("DOCKER_HOST") or "the local socket"
        raise ExternalError(f"the Docker engine at {where} does not answer: {e}") from e
    return client


def use_credentials(client: Any, lookup: Lookup, hosts: Iterable[str] = ()) -> None:
    """Give the engine, for every registry, the credentials `lookup` finds for its host.

    `hosts` are the registries a build may pull base images from (docker-py sends a build
    every credential it knows, as the Docker CLI does).
    """
    from docker.auth import INDEX_NAME, AuthConfig

    known = tuple(hosts)

    class Chain(AuthConfig):
        is_empty = False  # never fall back to docker-py's own reading of the config file

        def resolve_authconfig(self, registry: str | None = None) -> dict[str, str] | None:
            found = lookup(registry or INDEX_NAME)
            return found.engine_auth(registry or INDEX_NAME) if found else None

        def get_all_credentials(self) -> dict[str, dict[str, str]]:
            return {host: found.engine_auth(host) for host in known
                    if (found := lookup(host)) is not None}

    # docker-py keeps what it sends as X-Registry-Auth / X-Registry-Config here (login() writes
    # it too); every pull, push, build and service update reads it.
    client.api._auth_configs = Chain({})


def registry_failure(registry: str, what: str, message: str,
                     credentials: Credentials | None) -> Exception:
    """What the engine's answer about a registry means for the step: refused or missing
    credentials and a missing image are the user's to fix (exit 2); trouble that may pass is
    Transient; anything else an outside failure (exit 3)."""
    text = message.strip()
    lower = text.lower()
    if any(word in lower for word in _REFUSED):
        cause = refused(registry, credentials) if credentials else needs_credentials(registry)
        return UsageError(f"{cause}: {what}: {text}")
    if any(word in lower for word in _MISSING):
        return UsageError(f"{what}: the image is not in registry {registry} ({text}); push it "
                          "first, or check the image reference")
    if any(word in lower for word in _TRANSIENT):
        return Transient(f"registry {registry}: {what}: {text}")
    return ExternalError(f"registry {registry}: {what}: {text}")
