"""`docker-cd build`: build the image with its provenance labels; with --push, name it by digest.

Built once: with --push, a commit that already has its image (the one the promotion service
registered for it, a verified one first, else the one under the commit's tag), built from the
same inputs, is not built again: the pipeline's tags are added to that digest, registry-side.
Otherwise the build runs on the Docker engine (docker-py) from a context and Dockerfile, with
build args and a target stage, and is reproducible: every time in the context, the layers and
the image config is clamped to the commit's (SOURCE_DATE_EPOCH; steps.images.reproducible), so
a rebuild of the commit gives the same digest. `--cache-from` images (default: the branch's
earlier image) are pulled when present and skipped quietly when not. OCI labels (revision,
source, created, version, title, url) come from the CI variables. On failure the log ends with
the failing instruction and its output, and the step exits 1.

A member of a release (--member NAME, the Compose service it runs as) is pushed to
<repository>/<name> and written as CD_IMAGE_<NAME> alone, so the build jobs of several
members hand their images to one register job. A member whose context did not change since an
earlier build (the same files, Dockerfile, target, build args and labels: its context digest,
a `ctx-` tag) reuses that image instead of being built again.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from steps.commands import Step
from steps.commands.inputs.ci import COMMIT_TIME
from steps.commands.inputs.image import ImagePush
from steps.commands.inputs.pipeline import Pipeline
from steps.commands.inputs.registry import PLAIN_HTTP, RegistryAuth
from steps.commands.inputs.service import Service
from steps.images.dockerfile import with_labels
from steps.images.pull import pull
from steps.images.push import image_result, push_tags
from steps.images.reference import parse_reference
from steps.images.reproducible import (
    context_archive,
    context_digest,
    declares_epoch,
    iso,
    normalise,
    source_date_epoch,
)
from steps.registry import Manifest, RegistryClient, RegistryError, Repo, step_error
from steps.registry.tagging import tag_image
from steps.release.members import name_problem, variable
from steps.runtime.errors import ExternalError, Refused, UsageError
from steps.runtime.inputs import group, option
from steps.runtime.log import Log
from steps.runtime.outputs import Result
from steps.service.commits import commit_images

if TYPE_CHECKING:
    from steps.context import Context

OCI = "org.opencontainers.image."
INPUTS_LABEL = "dev.docker-cd.build-inputs"  # hash of what the build was given besides the commit
CONTEXT_LABEL = "dev.docker-cd.context"  # a member's context digest (reused across commits)
LABELLED_DOCKERFILE = ".docker-cd.Dockerfile"  # the Dockerfile with its labels, in the context
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
        "Version of the packaged software [default: the short commit SHA].",
        env=("CD_VERSION",))
    push: bool = option("Push the tags and write CD_IMAGE (repository@digest) to the "
                        "outputs; a commit built before gets its image's tags instead.",
                        env=("CD_PUSH",), default=False)
    source_date_epoch: str | None = option(
        "The commit's time in Unix seconds, for every time in the image [default: the commit "
        "time, else git HEAD's].", env=("SOURCE_DATE_EPOCH",), metavar="SECONDS")
    commit_time: str | None = COMMIT_TIME.field()
    plain_http: tuple[str, ...] = PLAIN_HTTP.field()
    member: str | None = option(
        "Build this member of a release of several images (the Compose service it runs as): "
        "pushed to <repository>/<member>, written as CD_IMAGE_<MEMBER>.", env=("CD_MEMBER",),
        metavar="NAME")
    image: ImagePush = group(ImagePush)
    auth: RegistryAuth = group(RegistryAuth)
    pipeline: Pipeline = group(Pipeline)
    service: Service = group(Service)


def labels(settings: Settings, created: datetime.datetime) -> dict[str, str]:
    """The provenance labels, from the CI variables; extra --label values win. Nothing that
    differs between pipelines of one commit (the pipeline, a git tag added later): the pipeline
    is recorded by the promotion service, the release tags point at the image."""
    pipeline = settings.pipeline
    title = settings.title or (pipeline.project_path or "").rstrip("/").rsplit("/", 1)[-1]
    version = settings.version or (pipeline.commit_sha or "")[:8]
    found = {
        OCI + "revision": pipeline.commit_sha,
        OCI + "source": pipeline.project_url,
        OCI + "url": pipeline.project_url,
        OCI + "created": created.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        OCI + "version": version,
        OCI + "title": title,
    }
    found = {k: v for k, v in found.items() if v} | dict(settings.label or {})
    if settings.member:
        found[CONTEXT_LABEL] = member_context(settings)
    return found | {INPUTS_LABEL: build_inputs(settings, found)}


def member_context(settings: Settings) -> str:
    """A member's context digest: its files and what the build is given, not the commit."""
    dockerfile = dockerfile_in_context(settings)
    given = json.dumps({"dockerfile": dockerfile, "target": settings.target,
                        "build_args": sorted((settings.build_arg or {}).items()),
                        "labels": sorted((settings.label or {}).items())}, sort_keys=True)
    return context_digest(Path(settings.context), dockerfile, given)


def repository_of(settings: Settings) -> str:
    """Where the image goes: the repository, and for a member its own path under it."""
    repository = settings.image.repository()
    return f"{repository}/{settings.member}" if settings.member else repository


def outputs_of(settings: Settings, result: Result) -> dict[str, str]:
    """The dotenv: CD_IMAGE and its parts, or a member's CD_IMAGE_<NAME> alone (several build
    jobs hand their variables to one register job)."""
    if not settings.member:
        return dict(result.outputs)
    image = result.outputs.get("CD_IMAGE")
    return {variable(settings.member): image} if image else {}


def build_inputs(settings: Settings, image_labels: dict[str, str]) -> str:
    """A hash of what the build is given besides the commit's files: an image of the commit
    with the same hash was built from the same inputs and can be reused."""
    given = {"dockerfile": dockerfile_in_context(settings),
             "target": settings.target, "build_args": sorted((settings.build_arg or {}).items()),
             "labels": sorted((k, v) for k, v in image_labels.items()
                              if k not in (OCI + "created", INPUTS_LABEL))}
    text = json.dumps(given, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


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
    if settings.member and (problem := name_problem(settings.member)):
        raise UsageError(problem, "member")
    if not Path(settings.context).is_dir():
        raise UsageError(f"no directory {settings.context}", "context")
    dockerfile_in_context(settings)
    settings.image.validate(settings.pipeline.commit_sha, settings.pipeline.ref_slug)
    for ref in settings.cache_from:
        try:
            parse_reference(ref)
        except ValueError as e:
            raise UsageError(str(e), "cache_from") from None
    if settings.source_date_epoch or settings.commit_time:
        _epoch(settings)


def execute(settings: Settings, ctx: Context) -> Result:
    result = _execute(settings, ctx)
    return Result(outputs=outputs_of(settings, result), data=result.data)


def _execute(settings: Settings, ctx: Context) -> Result:
    repository = repository_of(settings)
    tags = _tags(settings)
    store = settings.auth.store()
    log = ctx.log
    epoch, epoch_from = _epoch(settings)
    created = (datetime.datetime.fromtimestamp(epoch, datetime.UTC) if epoch is not None
               else datetime.datetime.now(datetime.UTC))
    all_labels = labels(settings, created)
    if settings.member:
        tags.append("ctx-" + all_labels[CONTEXT_LABEL].removeprefix("sha256:"))
    if settings.push and settings.pipeline.commit_sha:
        reused = _reuse(settings, ctx, repository, tags, all_labels[INPUTS_LABEL])
        if reused:
            return reused
    client = ctx.engine(store, settings.image.docker_host)
    credentials = ctx.credentials(store, parse_reference(repository).registry)
    cache = [ref for ref in cache_images(settings, repository) if _pull_cache(client, ref, log)]
    names = [f"{repository}:{tag}" for tag in tags]
    image_id = _build(client, settings, names[0], all_labels, cache, epoch, log)
    if epoch is None:
        log.warn(f"{epoch_from}: the image carries the time of this build, so a rebuild of the "
                 "commit will differ; set SOURCE_DATE_EPOCH")
        for tag in tags[1:]:
            client.api.tag(image_id, repository, tag)
    else:
        image_id = normalise(client, image_id, epoch, names)
        log.info(f"every time in the image set to {iso(epoch)} or before ({epoch_from})")
    log.info(f"built {image_id} as " + ", ".join(names))
    if not settings.push:
        return Result(outputs={"CD_IMAGE_REPOSITORY": repository,
                               "CD_IMAGE_TAGS": ",".join(tags)},
                      data={"image_id": image_id, "labels": all_labels})
    digest = push_tags(client, repository, tags, credentials, log, settings.image.retries + 1)
    result = image_result(repository, digest, tags)
    return Result(outputs=result.outputs, data={**result.data, "image_id": image_id,
                                                "labels": all_labels})


def _epoch(settings: Settings) -> tuple[int | None, str]:
    try:
        return source_date_epoch(settings.source_date_epoch, settings.commit_time,
                                 Path(settings.context))
    except ValueError as e:
        option = "source_date_epoch" if settings.source_date_epoch else "commit_time"
        raise UsageError(str(e), option) from None


def _reuse(settings: Settings, ctx: Context, repository: str, tags: list[str],
           inputs: str) -> Result | None:
    """The commit's image built before from the same inputs, given this pipeline's tags
    registry-side; None when there is none (then it is built)."""
    commit = settings.pipeline.commit_sha or ""
    log = ctx.log
    ref = parse_reference(repository)
    repo = Repo(ref.registry, ref.repository, push=True)
    client = ctx.registry(settings.auth.store(), settings.image.retries + 1, settings.plain_http)
    candidates: list[tuple[str, str]] = []
    service = ctx.service(settings.service.service_url, settings.service.credential)
    if service:
        try:
            candidates += [(image.digest, "registered by the promotion service" + (
                f", verified in {', '.join(image.verified_in)}" if image.verified_in else ""))
                for image in commit_images(service, repository, commit)]
        except ExternalError as e:  # the commit's tag still tells
            log.warn(f"cannot ask the promotion service for the commit's image: {e.message}")
    candidates.append((commit, f"under the commit's tag {repository}:{commit}"))
    context = [t for t in tags if t.startswith("ctx-")]
    candidates += [(t, f"built before from the same context, {repository}:{t}") for t in context]
    try:
        for reference, where in candidates:
            manifest = client.get_manifest(repo, reference)
            if manifest is None:
                continue
            why_not = _why_not_same(client, repo, manifest, commit, inputs,
                                    "sha256:" + reference[4:] if reference in context else None)
            if why_not:
                log.info(f"not reusing {repository}@{manifest.digest} ({where}): {why_not}")
                continue
            what = "its context" if reference in context else f"commit {commit[:12]}"
            log.info(f"{what} was built before: reusing {repository}@"
                     f"{manifest.digest} ({where}) instead of building it again")
            tag_image(client, manifest, repo, [ref.with_tag(t) for t in tags], log=log)
            result = image_result(repository, manifest.digest, tags)
            return Result(outputs=result.outputs, data={**result.data, "reused": where})
    except RegistryError as e:
        raise step_error(e) from e
    return None


def _why_not_same(client: RegistryClient, repo: Repo, manifest: Manifest, commit: str,
                  inputs: str, context: str | None = None) -> str | None:
    """Why this image is not the commit's built from these inputs (or, given a member's
    `context` digest, one built from that context); None when it is."""
    if manifest.is_index:
        return "an image index, which docker-cd does not build"
    config = json.loads(client.get_blob(repo, manifest.json()["config"]["digest"]))
    found = (config.get("config") or {}).get("Labels") or {}
    if context:
        return None if found.get(CONTEXT_LABEL) == context else (
            f"its {CONTEXT_LABEL} label is {found.get(CONTEXT_LABEL)!r}")
    if found.get(OCI + "revision") != commit:
        return f"its {OCI}revision label is {found.get(OCI + 'revision')!r}"
    if found.get(INPUTS_LABEL) != inputs:
        return ("it was built from other inputs (Dockerfile, target, build args or labels: "
                f"{INPUTS_LABEL})")
    return None


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
           cache: list[str], epoch: int | None, log: Log) -> str:
    """Run the build, streaming its output; return the image id or raise Refused."""
    import docker.errors

    dockerfile = dockerfile_in_context(settings)
    build_args = dict(settings.build_arg or {})
    if epoch is not None and declares_epoch((Path(settings.context) / dockerfile).read_text()):
        build_args.setdefault("SOURCE_DATE_EPOCH", str(epoch))
    argv = ["docker", "build", "-f", dockerfile, "-t", name]
    for key in build_args:
        argv += ["--build-arg", key]
    argv += [f"--target={settings.target}"] if settings.target else []
    argv += [f"--cache-from={c}" for c in cache]
    log.command([*argv, settings.context])
    step, step_output, image_id = "", [], None
    labelled = _labelled(settings.context, dockerfile, all_labels, settings.target)
    build_labels = None if labelled is not None else all_labels
    extra = {LABELLED_DOCKERFILE: labelled.encode()} if labelled is not None else {}
    with log.section(f"docker build {name}"):
        try:
            context = context_archive(Path(settings.context), dockerfile, epoch, extra)
            stream = client.api.build(
                fileobj=context, custom_context=True,
                dockerfile=LABELLED_DOCKERFILE if labelled is not None else dockerfile,
                tag=name, buildargs=build_args, target=settings.target,
                labels=build_labels, cache_from=cache or None, rm=True, forcerm=True,
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


def _labelled(context: str, dockerfile: str, all_labels: dict[str, str],
              target: str | None) -> str | None:
    """The Dockerfile closing with one LABEL instruction (one build step instead of one per
    label), sent in the context as LABELLED_DOCKERFILE; None when it cannot be written safely
    (the engine then labels the image itself)."""
    try:
        text = (Path(context) / dockerfile).read_text()
    except (OSError, UnicodeDecodeError):
        return None
    return with_labels(text, all_labels, target)


STEP = Step(name="build", help=__doc__ or "", settings=Settings, execute=execute,
            validate=validate)
