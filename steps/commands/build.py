"""`docker-cd build`: build the image with its provenance labels; with --push, name it by digest.

The build runs on the Docker engine (docker-py) from a context and Dockerfile, with build args
and a target stage. `--cache-from` images (default: the branch's earlier image) are pulled when
present and skipped quietly when not. OCI labels (revision, source, created, version, title,
url) and the pipeline's id and URL come from the CI variables. On failure the log ends with
the failing instruction and its output, and the step exits 1.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from steps.commands import Step
from steps.commands.inputs.image import ImagePush
from steps.commands.inputs.pipeline import Pipeline
from steps.commands.inputs.registry import RegistryAuth
from steps.images.pull import pull
from steps.images.push import image_result, push_tags
from steps.images.reference import parse_reference
from steps.runtime.errors import ExternalError, Refused, UsageError
from steps.runtime.inputs import group, option
from steps.runtime.log import Log
from steps.runtime.outputs import Result

if TYPE_CHECKING:
    from steps.context import Context

OCI = "org.opencontainers.image."
PIPELINE_LABEL = "dev.docker-cd.pipeline."
_ENGINE_CHATTER = (" ---> ", "Removing intermediate container")


@dataclass(frozen=True)
class Settings:
    """The build step's inputs."""

    context: str = option("Build context directory.", env=("CD_BUILD_CONTEXT",), default=".",
                          metavar="DIR")
    file: str | None = option(
        "Dockerfile, relative to the context unless absolute [default: Dockerfile].",
        env=("CD_DOCKERFILE",), metavar="FILE")
    build_arg: Mapping[str, str] | None = option(
        "Build argument (repeat, or one per line in the variable).", env=("CD_BUILD_ARGS",))
    target: str | None = option("Stage of a multi-stage Dockerfile to build.",
                                env=("CD_BUILD_TARGET",))
    cache_from: tuple[str, ...] = option(
        "Images to reuse layers from, pulled when present [default: the branch's earlier "
        "image, REPOSITORY:REF_SLUG].", env=("CD_CACHE_FROM",), default=())
    label: Mapping[str, str] | None = option(
        "Extra label (repeat, or one per line in the variable).", env=("CD_LABELS",))
    title: str | None = option("Human title of the image (org.opencontainers.image.title).",
                               env=("CD_TITLE", "CI_PROJECT_TITLE", "CI_PROJECT_NAME"))
    version: str | None = option(
        "Version of the packaged software [default: the git tag, else the short commit SHA].",
        env=("CD_VERSION",))
    push: bool = option("Push the tags and write CD_IMAGE (repository@digest) to the "
                        "outputs.", env=("CD_PUSH",), default=False)
    image: ImagePush = group(ImagePush)
    auth: RegistryAuth = group(RegistryAuth)
    pipeline: Pipeline = group(Pipeline)


def labels(settings: Settings, created: datetime.datetime) -> dict[str, str]:
    """The provenance labels, from the CI variables; extra --label values win."""
    pipeline = settings.pipeline
    title = settings.title or (pipeline.project_path or "").rstrip("/").rsplit("/", 1)[-1]
    version = settings.version or pipeline.git_tag or (pipeline.commit_sha or "")[:8]
    found = {
        OCI + "revision": pipeline.commit_sha,
        OCI + "source": pipeline.project_url,
        OCI + "url": pipeline.project_url,
        OCI + "created": created.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        OCI + "version": version,
        OCI + "title": title,
        PIPELINE_LABEL + "id": pipeline.pipeline_id,
        PIPELINE_LABEL + "url": pipeline.pipeline_url,
    }
    return {k: v for k, v in found.items() if v} | dict(settings.label or {})


def dockerfile_in_context(settings: Settings) -> str:
    """The Dockerfile's path relative to the context (as the engine takes it)."""
    context = Path(settings.context)
    path = Path(settings.file or "Dockerfile")
    if not path.is_absolute():
        path = context / path
    if not path.is_file():
        raise UsageError(f"no Dockerfile at {path}", "file")
    try:
        return str(path.resolve().relative_to(context.resolve()))
    except ValueError:
        raise UsageError(f"{path} is outside the build context {context}; move it in or "
                         "change --context", "file") from None


def cache_images(settings: Settings, repository: str) -> list[str]:
    """The images to take cache from: as asked, else the branch's earlier image."""
    if settings.cache_from:
        return list(settings.cache_from)
    ref_slug = settings.pipeline.ref_slug
    return [f"{repository}:{ref_slug}"] if ref_slug else []


def _tags(settings: Settings) -> list[str]:
    return settings.image.tags(settings.pipeline.commit_sha, settings.pipeline.ref_slug)


def validate(settings: Settings) -> None:
    if not Path(settings.context).is_dir():
        raise UsageError(f"no directory {settings.context}", "context")
    dockerfile_in_context(settings)
    settings.image.validate(settings.pipeline.commit_sha, settings.pipeline.ref_slug)
    for ref in settings.cache_from:
        try:
            parse_reference(ref)
        except ValueError as e:
            raise UsageError(str(e), "cache_from") from None


def execute(settings: Settings, ctx: Context) -> Result:
    repository = settings.image.repository()
    tags = _tags(settings)
    store = settings.auth.store()
    client = ctx.engine(store, settings.image.docker_host)
    credentials = ctx.credentials(store, parse_reference(repository).registry)
    log = ctx.log
    cache = [ref for ref in cache_images(settings, repository) if _pull_cache(client, ref, log)]
    all_labels = labels(settings, datetime.datetime.now(datetime.UTC))
    image_id = _build(client, settings, f"{repository}:{tags[0]}", all_labels, cache, log)
    for tag in tags[1:]:
        client.api.tag(image_id, repository, tag)
    log.info(f"built {image_id} as " + ", ".join(f"{repository}:{t}" for t in tags))
    if not settings.push:
        return Result(outputs={"CD_IMAGE_REPOSITORY": repository,
                               "CD_IMAGE_TAGS": ",".join(tags)},
                      data={"image_id": image_id, "labels": all_labels})
    digest = push_tags(client, repository, tags, credentials, log, settings.image.retries + 1)
    result = image_result(repository, digest, tags)
    return Result(outputs=result.outputs, data={**result.data, "image_id": image_id,
                                                "labels": all_labels})


def _pull_cache(client: Any, ref: str, log: Log) -> bool:
    """Pull a cache image if the registry has it; any failure only means no cache."""
    import docker.errors

    try:
        pull(client, ref)
    except (docker.errors.DockerException, OSError) as e:
        reason = str(getattr(e, "explanation", None) or e).strip().splitlines()[0][:200]
        log.info(f"no cache from {ref} ({reason}); building without it")
        return False
    log.info(f"cache from {ref}")
    return True


def _build(client: Any, settings: Settings, name: str, all_labels: dict[str, str],
           cache: list[str], log: Log) -> str:
    """Run the build, streaming its output; return the image id or raise Refused."""
    import docker.errors

    dockerfile = dockerfile_in_context(settings)
    argv = ["docker", "build", "-f", dockerfile, "-t", name]
    for key in settings.build_arg or {}:
        argv += ["--build-arg", key]
    argv += [f"--target={settings.target}"] if settings.target else []
    argv += [f"--cache-from={c}" for c in cache]
    log.command([*argv, settings.context])
    step, step_output, image_id = "", [], None
    with log.section(f"docker build {name}"):
        try:
            stream = client.api.build(
                path=str(Path(settings.context)), dockerfile=dockerfile, tag=name,
                buildargs=dict(settings.build_arg or {}), target=settings.target,
                labels=all_labels, cache_from=cache or None, rm=True, forcerm=True,
                decode=True)
            for event in stream:
                if "stream" in event:
                    text = event["stream"]
                    for line in text.splitlines():
                        if line.startswith("Step "):
                            step, step_output = line, []
                        elif line.strip() and not line.startswith(_ENGINE_CHATTER):
                            step_output.append(line)
                        if line.strip():
                            log.info(line)
                elif "error" in event:
                    raise Refused(f"docker build failed at {step or 'its start'}",
                                  [*step_output[-30:], event["error"].strip()])
                elif "aux" in event:
                    image_id = event["aux"].get("ID", image_id)
        except docker.errors.APIError as e:
            text = str(e.explanation or e)
            if e.is_client_error() or "dockerfile" in text.lower():
                raise Refused(f"docker build failed: {text}") from e
            raise ExternalError(f"the Docker engine failed the build: {text}") from e
        except (OSError, docker.errors.DockerException) as e:
            raise ExternalError(f"the Docker engine failed during the build: {e}") from e
    if not image_id:
        image_id = client.api.inspect_image(name)["Id"]
    return image_id


STEP = Step(name="build", help=__doc__ or "", settings=Settings, execute=execute,
            validate=validate)
