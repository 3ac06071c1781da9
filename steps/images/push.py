"""`docker push` of an image's tags through the engine, learning the digest the registry gave.

The engine authenticates with the credentials the client carries (steps.images.engine).
Transient failures (5xx, connection refused or reset, timeouts) are retried with backoff and end
with exit 3; refused or missing credentials are not retried and end with exit 2; either way the
error names the registry.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

from steps.images.credentials import Credentials
from steps.images.engine import registry_failure
from steps.images.reference import parse_reference
from steps.runtime.errors import ExternalError, UsageError
from steps.runtime.log import Log
from steps.runtime.outputs import Result
from steps.runtime.retry import Transient, call_with_retries


def image_result(repository: str, digest: str, tags: Sequence[str]) -> Result:
    """The outputs every step that puts an image in a registry hands on."""
    return Result(outputs={"CD_IMAGE": f"{repository}@{digest}",
                           "CD_IMAGE_REPOSITORY": repository,
                           "CD_IMAGE_DIGEST": digest,
                           "CD_IMAGE_TAGS": ",".join(tags)},
                  data={"tags": [f"{repository}:{t}" for t in tags]})


def push_tags(client: Any, repository: str, tags: Sequence[str],
              credentials: Credentials | None, log: Log, attempts: int = 4) -> str:
    """Push each tag (retrying transient failures); return the registry's digest.
    `credentials` are those the engine was given for the registry, to name them in an error."""
    registry = parse_reference(repository).registry
    digests = set()
    for tag in tags:
        try:
            digests.add(call_with_retries(
                partial(_push_one, client, repository, tag, credentials, log),
                attempts=attempts, multiplier=1, max_wait=20,
                on_retry=lambda e: log.warn(f"push to {registry} failed ({e}); retrying")))
        except Transient as e:
            raise ExternalError(f"registry {registry}: pushing {repository}:{tag} failed after "
                                f"{attempts} attempts: {e}") from e
    if len(digests) != 1:
        raise ExternalError(f"the tags of {repository} were pushed as different digests: "
                            f"{', '.join(sorted(digests))} (a tag moved during the push?)")
    digest = digests.pop()
    log.info(f"{repository}@{digest}")
    return digest


def _push_one(client: Any, repository: str, tag: str, credentials: Credentials | None,
              log: Log) -> str:
    import docker.errors

    registry = parse_reference(repository).registry
    log.command(["docker", "push", f"{repository}:{tag}"])
    progress = _Progress(log)
    digest = None
    try:
        for event in client.api.push(repository, tag, stream=True, decode=True):
            if "error" in event:
                _raise_push_error(registry, f"{repository}:{tag}", event["error"], credentials)
            aux = event.get("aux") or {}
            digest = aux.get("Digest") or digest
            progress.update(event)
    except docker.errors.APIError as e:
        _raise_push_error(registry, f"{repository}:{tag}", str(e.explanation or e), credentials)
    except (OSError, docker.errors.DockerException) as e:
        raise ExternalError(f"the Docker engine failed while pushing {repository}:{tag}: {e}"
                            ) from e
    if not digest:
        raise ExternalError(f"registry {registry}: the push of {repository}:{tag} reported no "
                            "digest")
    log.info(f"{repository}:{tag}: digest {digest}")
    return digest


def _raise_push_error(registry: str, ref: str, message: str,
                      credentials: Credentials | None) -> None:
    lower = message.lower()
    if "does not exist locally" in lower or "no such image" in lower:
        raise UsageError(f"there is no local image {ref}: build it first (docker-cd build)",
                         "tag")
    raise registry_failure(registry, f"pushing {ref}", message, credentials)


class _Progress:
    """Layer by layer progress: one line per change of state, and every 25% of a big upload."""

    def __init__(self, log: Log) -> None:
        self.log = log
        self.state: dict[str, str] = {}
        self.quarter: dict[str, int] = {}

    def update(self, event: dict) -> None:
        layer, status = event.get("id"), event.get("status", "")
        if not layer or not status or status in ("Preparing", "Waiting"):
            return
        if status == "Pushing":
            detail = event.get("progressDetail") or {}
            total, current = detail.get("total") or 0, detail.get("current") or 0
            if total > 4 * 1024 * 1024:
                quarter = min(4, int(4 * current / total))
                if quarter > self.quarter.get(layer, 0):
                    self.quarter[layer] = quarter
                    self.log.info(f"{layer}: pushing {25 * quarter}% of {total / 1e6:.0f} MB")
            if self.state.get(layer) == "Pushing":
                return
        if self.state.get(layer) != status:
            self.state[layer] = status
            self.log.info(f"{layer}: {status}")
