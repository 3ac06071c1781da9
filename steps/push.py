"""`docker-cd push`: push local tags of an image and learn the digest the registry gave it.

From here on the image is named by digest (CD_IMAGE=repository@sha256:...). Transient
failures (5xx, connection refused or reset, timeouts) are retried with backoff; refused
credentials are not retried; either way the step ends with exit 3 naming the registry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from steps.credentials import Credentials, find_credentials
from steps.errors import ExternalError, UsageError
from steps.reference import TAG, parse_reference
from steps.registry import REGISTRY_OPTIONS
from steps.retry import Transient, call_with_retries
from steps.runtime import (
    CI_CONTEXT,
    REGISTRY_AUTH,
    CIContextSettings,
    Log,
    Option,
    RegistryAuthSettings,
    Result,
    Step,
)

IMAGE_OPTIONS = (
    Option("image-repository", "Repository the image is named in (registry/path).",
           env=("CD_IMAGE_REPOSITORY", "CI_REGISTRY_IMAGE"), metavar="REPOSITORY"),
    Option("tag", "Tags of the image; default: the commit SHA and the ref slug.",
           env=("CD_TAGS",), kind="list", default=()),
    Option("docker-host", "Docker engine to use (unix:///..., tcp://docker:2375) [default: "
           "DOCKER_HOST with DOCKER_TLS_VERIFY/DOCKER_CERT_PATH, else the local socket].",
           env=("CD_DOCKER_HOST",), metavar="URL"),
)
RETRIES = tuple(o for o in REGISTRY_OPTIONS if o.dest == "retries")
_CI = tuple(o for o in CI_CONTEXT if o.dest in ("commit_sha", "ref_slug"))
_REFUSED = ("unauthorized", "authentication required", "no basic auth credentials", "denied",
            "incorrect username or password")
_TRANSIENT = ("connection refused", "connection reset", "no such host", "i/o timeout",
              "timeout", "eof", "unexpected http status: 5", "toomanyrequests",
              "service unavailable", "bad gateway", "broken pipe")


@dataclass(frozen=True)
class ImageSettings:
    """The fields behind IMAGE_OPTIONS and RETRIES, for the steps that push (build, push)."""

    image_repository: str | None = None
    tag: tuple[str, ...] = ()
    docker_host: str | None = None
    retries: int = 3


@dataclass(frozen=True)
class Settings(CIContextSettings, RegistryAuthSettings, ImageSettings):
    """The push step's inputs (see IMAGE_OPTIONS)."""


def image_tags(settings: Any) -> list[str]:
    """The tags asked for, else the commit SHA and the ref slug; UsageError when none."""
    tags = list(settings.tag) or [t for t in (settings.commit_sha, settings.ref_slug) if t]
    if not tags:
        raise UsageError("no tag: give --tag, or run in CI (CI_COMMIT_SHA / CD_COMMIT_SHA gives "
                         "the default tags)", "tag")
    for tag in tags:
        if not TAG.fullmatch(tag):
            raise UsageError(f"{tag!r} is not a valid tag ([A-Za-z0-9_.-], up to 128, not "
                             "starting with . or -)", "tag")
    return list(dict.fromkeys(tags))


def check_repository(settings: Any) -> str:
    """The image repository, checked: registry/path without tag or digest."""
    if not settings.image_repository:
        raise UsageError("the image repository is required, e.g. registry.example.com/group/app "
                         "(GitLab sets CI_REGISTRY_IMAGE)", "image_repository")
    try:
        ref = parse_reference(settings.image_repository)
    except ValueError as e:
        raise UsageError(str(e), "image_repository") from None
    if ref.tag or ref.digest:
        raise UsageError("give the repository without a tag or digest; tags go in --tag",
                         "image_repository")
    return settings.image_repository


def validate(settings: ImageSettings) -> None:
    """The checks of every step that names an image by IMAGE_OPTIONS and RETRIES."""
    check_repository(settings)
    image_tags(settings)
    if settings.retries < 0:
        raise UsageError("must be 0 or more", "retries")


def execute(settings: Settings, log: Log) -> Result:
    from steps.engine import docker_client

    repository = check_repository(settings)
    tags = image_tags(settings)
    credentials = find_credentials(settings, parse_reference(repository).registry, log)
    digest = push_tags(docker_client(settings.docker_host), repository, tags, credentials, log,
                       attempts=settings.retries + 1)
    return image_result(repository, digest, tags)


def image_result(repository: str, digest: str, tags: Sequence[str]) -> Result:
    """The outputs every step that puts an image in a registry hands on."""
    return Result(outputs={"CD_IMAGE": f"{repository}@{digest}",
                           "CD_IMAGE_REPOSITORY": repository,
                           "CD_IMAGE_DIGEST": digest,
                           "CD_IMAGE_TAGS": ",".join(tags)},
                  data={"tags": [f"{repository}:{t}" for t in tags]})


def push_tags(client: Any, repository: str, tags: Sequence[str],
              credentials: Credentials | None, log: Log, attempts: int = 4) -> str:
    """Push each tag (retrying transient failures); return the registry's digest."""
    registry = parse_reference(repository).registry
    auth = credentials.docker_auth_config() if credentials else None
    digests = set()
    for tag in tags:
        try:
            digests.add(call_with_retries(
                partial(_push_one, client, repository, tag, auth, log),
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


def _push_one(client: Any, repository: str, tag: str, auth: dict | None, log: Log) -> str:
    import docker.errors

    registry = parse_reference(repository).registry
    log.command(["docker", "push", f"{repository}:{tag}"])
    progress = _Progress(log)
    digest = None
    try:
        for event in client.api.push(repository, tag, stream=True, decode=True,
                                     auth_config=auth):
            if "error" in event:
                _raise_push_error(registry, f"{repository}:{tag}", event["error"])
            aux = event.get("aux") or {}
            digest = aux.get("Digest") or digest
            progress.update(event)
    except docker.errors.APIError as e:
        _raise_push_error(registry, f"{repository}:{tag}", str(e.explanation or e))
    except (OSError, docker.errors.DockerException) as e:
        raise ExternalError(f"the Docker engine failed while pushing {repository}:{tag}: {e}"
                            ) from e
    if not digest:
        raise ExternalError(f"registry {registry}: the push of {repository}:{tag} reported no "
                            "digest")
    log.info(f"{repository}:{tag}: digest {digest}")
    return digest


def _raise_push_error(registry: str, ref: str, message: str) -> None:
    lower = message.lower()
    if "does not exist locally" in lower or "no such image" in lower:
        raise UsageError(f"there is no local image {ref}: build it first (docker-cd build)",
                         "tag")
    if any(word in lower for word in _REFUSED):
        raise ExternalError(f"registry {registry} refused the credentials: {message.strip()}")
    if any(word in lower for word in _TRANSIENT):
        raise Transient(message.strip())
    raise ExternalError(f"registry {registry}: {message.strip()}")


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


STEP = Step(name="push", help=__doc__ or "", settings=Settings, execute=execute,
            validate=validate, options=(*IMAGE_OPTIONS, *RETRIES, *REGISTRY_AUTH, *_CI))
