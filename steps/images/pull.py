"""An image ready for a release before the release changes anything: on the engine, or in its
registry with credentials that let the engine (or the swarm's nodes) pull it.

The engine client carries the credentials (steps.images.engine). A refused password or a
missing image ends the step with exit 2, naming the registry, the image and where the
credentials came from, while the previous release keeps running; a registry that is down is
retried, then exit 3.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from steps.images.engine import Lookup, registry_failure
from steps.images.reference import digest_reference, parse_reference
from steps.runtime.errors import ExternalError
from steps.runtime.log import Log
from steps.runtime.retry import Transient, call_with_retries

ATTEMPTS = 3


def ensure_image(client: Any, ref: str, log: Log, credentials: Lookup) -> tuple[str, str]:
    """The image on this engine, pulled if missing: its id to run and the reference to record
    (repository@digest when the engine knows one, else the id)."""
    image = _local(client, ref)
    if image is None:
        log.command(["docker", "pull", ref])
        _registry_call(ref, credentials, log, lambda: pull(client, ref))
        image = client.images.get(ref)
    if "@sha256:" in ref:
        return image.id, ref
    return image.id, digest_reference(ref, image.attrs.get("RepoDigests") or []) or image.id


def check_pullable(client: Any, refs: list[str], log: Log, credentials: Lookup) -> None:
    """Each image is on this engine, or its registry has it and takes the credentials (asked
    through the engine, as `docker service create` does, without pulling it here)."""
    with log.section("Images"):
        for ref in refs:
            if _local(client, ref) is None:
                log.command(["docker", "manifest", "inspect", ref])
                _registry_call(ref, credentials, log,
                               lambda ref=ref: client.images.get_registry_data(ref))


def pull(client: Any, ref: str) -> None:
    """Pull, reading the engine's progress to its end: a failure may come as its last event
    (docker-py's `images.pull` drops it). Raises docker-py's APIError."""
    import docker.errors

    reference = parse_reference(ref)
    for event in client.api.pull(reference.name, reference.reference, stream=True, decode=True):
        if "error" in event:
            raise docker.errors.APIError(event["error"])


def _local(client: Any, ref: str) -> Any:
    import docker.errors

    try:
        return client.images.get(ref)
    except docker.errors.ImageNotFound:
        return None
    except docker.errors.APIError as e:
        raise ExternalError(f"the Docker engine cannot look up image {ref}: "
                            f"{e.explanation or e}") from e


def _registry_call(ref: str, credentials: Lookup, log: Log, call: Callable[[], Any]) -> Any:
    """Ask the engine something of the image's registry, retrying what may pass."""
    import docker.errors

    registry = parse_reference(ref).registry

    def attempt() -> Any:
        try:
            return call()
        except docker.errors.APIError as e:
            raise registry_failure(registry, ref, str(e.explanation or e),
                                   credentials(registry)) from e
        except (OSError, docker.errors.DockerException) as e:
            raise Transient(f"the Docker engine failed while reaching {registry} for {ref}: "
                            f"{e}") from e

    try:
        return call_with_retries(attempt, attempts=ATTEMPTS, multiplier=1, max_wait=10,
                                 on_retry=lambda e: log.warn(f"{e}; retrying"))
    except Transient as e:
        raise ExternalError(f"{e} (after {ATTEMPTS} attempts)") from e
