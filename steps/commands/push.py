"""`docker-cd push`: push local tags of an image and learn the digest the registry gave it.

From here on the image is named by digest (CD_IMAGE=repository@sha256:...). Transient
failures (5xx, connection refused or reset, timeouts) are retried with backoff and end with
exit 3; refused or missing credentials are not retried and end with exit 2; either way the
message names the registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from steps.commands import Step
from steps.commands.inputs.ci import COMMIT_SHA, REF_SLUG
from steps.commands.inputs.image import ImagePush
from steps.commands.inputs.registry import RegistryAuth
from steps.images.push import image_result, push_tags
from steps.images.reference import parse_reference
from steps.runtime.inputs import group
from steps.runtime.outputs import Result

if TYPE_CHECKING:
    from steps.context import Context


@dataclass(frozen=True)
class Settings:
    """The push step's inputs."""

    image: ImagePush = group(ImagePush)
    auth: RegistryAuth = group(RegistryAuth)
    commit_sha: str | None = COMMIT_SHA.field()
    ref_slug: str | None = REF_SLUG.field()


def validate(settings: Settings) -> None:
    settings.image.validate(settings.commit_sha, settings.ref_slug)


def execute(settings: Settings, ctx: Context) -> Result:
    repository = settings.image.repository()
    tags = settings.image.tags(settings.commit_sha, settings.ref_slug)
    store = settings.auth.store()
    credentials = ctx.credentials(store, parse_reference(repository).registry)
    digest = push_tags(ctx.engine(store, settings.image.docker_host), repository, tags,
                       credentials, ctx.log, attempts=settings.image.retries + 1)
    return image_result(repository, digest, tags)


STEP = Step(name="push", help=__doc__ or "", settings=Settings, execute=execute,
            validate=validate)
