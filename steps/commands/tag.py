"""`docker-cd tag SOURCE TARGET...`: add tags to an image already in a registry, without a pull.

With a promotion service, the semver (release) tags of a commit go to its image the service saw
verified, never to another digest of that commit; with none verified, the answer is no (exit 1).

The manifest's bytes are read once and PUT under each new tag, so the digest never changes.
Into another repository of the same registry the blobs are mounted; into another registry
they are streamed, only those the target lacks. Each target is HEADed first: a tag already on
the digest is left alone (nothing written), and with --immutable a tag on another digest is
refused before anything is written.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from steps.commands import Step
from steps.commands.inputs.ci import COMMIT_SHA, GIT_TAG, REF_SLUG
from steps.commands.inputs.registry import PLAIN_HTTP, RETRIES, RegistryAuth
from steps.commands.inputs.service import Service
from steps.images.reference import Reference, is_bare_tag, parse_reference
from steps.images.tag_schemes import SCHEMES, needs_existing_tags, scheme_tags
from steps.registry import RegistryClient, RegistryError, Repo, step_error
from steps.registry.tagging import tag_image
from steps.runtime.errors import Refused, UsageError
from steps.runtime.inputs import group, option
from steps.runtime.log import Log
from steps.runtime.outputs import Result
from steps.service.commits import commit_images

if TYPE_CHECKING:
    from steps.context import Context
    from steps.service.client import ServiceClient


@dataclass(frozen=True)
class Settings:
    """The tag step's inputs."""

    source: str | None = option(
        "Image to tag, by digest or tag (registry/path@sha256:... or :tag).", env=("CD_IMAGE",),
        positional=True, metavar="SOURCE")
    target: tuple[str, ...] = option(
        "Tags to add: a bare tag (in SOURCE's repository), a full reference (registry/path:tag), "
        "or a repository (registry/path) to receive the --scheme tags.", positional=True,
        default=(), metavar="TARGET")
    scheme: tuple[str, ...] = option(
        "Derive tags from the pipeline: sha (short and long commit SHA), ref (ref slug), semver "
        "(git tag v1.2.3 -> 1.2.3, 1.2, 1, latest).", env=("CD_TAG_SCHEME",), default=())
    immutable: bool = option("Refuse to move a tag that already points at another digest.",
                             env=("CD_IMMUTABLE_TAGS",), default=False)
    retries: int = RETRIES.field()
    plain_http: tuple[str, ...] = PLAIN_HTTP.field()
    auth: RegistryAuth = group(RegistryAuth)
    commit_sha: str | None = COMMIT_SHA.field()
    ref_slug: str | None = REF_SLUG.field()
    git_tag: str | None = GIT_TAG.field()
    service: Service = group(Service)


@dataclass(frozen=True)
class Plan:
    """What to tag: explicit target references, and repositories that get the scheme tags."""

    source: Reference
    tagged: tuple[Reference, ...]
    scheme_repositories: tuple[Reference, ...]


def plan(settings: Settings) -> Plan:
    """Parse SOURCE and TARGETs; raise UsageError naming the one at fault."""
    if not settings.source:
        raise UsageError("the image to tag is required, e.g. registry.example.com/app@sha256:...",
                         "source")
    try:
        source = parse_reference(settings.source)
    except ValueError as e:
        raise UsageError(str(e), "source") from None
    tagged: list[Reference] = []
    repositories: list[Reference] = []
    for text in settings.target:
        if is_bare_tag(text):
            tagged.append(source.with_tag(text))
            continue
        try:
            ref = parse_reference(text)
        except ValueError as e:
            raise UsageError(str(e), "target") from None
        if ref.digest:
            raise UsageError(f"{text!r}: a target names a tag, not a digest", "target")
        (tagged if ref.tag else repositories).append(ref)
    for scheme in settings.scheme:
        if scheme not in SCHEMES:
            raise UsageError(f"unknown scheme {scheme!r}; choose from {', '.join(SCHEMES)}",
                             "scheme")
    if repositories and not settings.scheme:
        raise UsageError(f"{repositories[0].name} names a repository without a tag: add :TAG, "
                         "or --scheme to derive the tags", "target")
    if not tagged and not settings.scheme:
        raise UsageError("nothing to tag: give a TARGET or --scheme sha|ref|semver", "target")
    if settings.retries < 0:
        raise UsageError("must be 0 or more", "retries")
    return Plan(source, tuple(tagged), tuple(repositories) or ((source,) if settings.scheme
                                                                 else ()))


def validate(settings: Settings) -> None:
    plan(settings)


@contextmanager
def _registry_errors() -> Iterator[None]:
    """Refused credentials end the step with exit 2; a registry that failed, after its retries,
    with exit 3."""
    try:
        yield
    except RegistryError as e:
        raise step_error(e) from e


def execute(settings: Settings, ctx: Context) -> Result:
    the_plan = plan(settings)
    log = ctx.log
    client = ctx.registry(settings.auth.store(), settings.retries + 1, settings.plain_http)
    source = the_plan.source
    service = ctx.service(settings.service.service_url, settings.service.credential)
    if service and "semver" in settings.scheme and settings.commit_sha:
        source = _verified(service, source, settings.commit_sha, log)
    # one token for the source repository when it also receives tags (Bearer registries)
    writes_source = any(ref.name == source.name
                        for ref in (*the_plan.tagged, *the_plan.scheme_repositories))
    src = Repo(source.registry, source.repository, push=writes_source)
    with _registry_errors():
        manifest = client.get_manifest(src, source.reference)
        if manifest is None:
            raise UsageError(f"{source} is not in registry {source.registry}: push it first",
                             "source")
        log.info(f"{source} is {manifest.digest} ({manifest.media_type})")
        targets = list(the_plan.tagged)
        if settings.scheme:
            targets += _scheme_targets(settings, client, the_plan.scheme_repositories)
        results = tag_image(client, manifest, src, targets, immutable=settings.immutable,
                            log=log)
    first = targets[0]
    tags = [t.tag for t in targets if t.name == first.name]
    return Result(
        outputs={"CD_IMAGE": f"{first.name}@{manifest.digest}",
                 "CD_IMAGE_REPOSITORY": first.name,
                 "CD_IMAGE_DIGEST": manifest.digest,
                 "CD_IMAGE_TAGS": ",".join(t for t in tags if t)},
        data={"source": str(source), "media_type": manifest.media_type, "tags": results})


def _verified(service: ServiceClient, source: Reference, commit: str, log: Log) -> Reference:
    """Release tags go to the commit's image that was verified: the one the promotion service
    saw pass its checks, whatever SOURCE says."""
    images = commit_images(service, source.name, commit)
    verified = [image for image in images if image.verified_in]
    if not verified:
        raise Refused(f"no image of commit {commit[:12]} in {source.name} was verified in any "
                      "environment: the release tags go to a verified image only",
                      [f"{source.name}@{image.digest}: registered, never verified"
                       for image in images] or ["the promotion service has no image of it"])
    chosen = verified[0]
    if source.digest not in (None, chosen.digest):
        log.warn(f"{source} is not the commit's verified image")
    log.info(f"the release tags go to {source.name}@{chosen.digest}, the image of commit "
             f"{commit[:12]} verified in {', '.join(chosen.verified_in)}")
    return source.with_digest(chosen.digest)


def _scheme_targets(settings: Settings, client: RegistryClient,
                    repositories: tuple[Reference, ...]) -> list[Reference]:
    targets = []
    for repository in repositories:
        existing: list[str] = []
        if needs_existing_tags(settings.scheme, settings.git_tag):
            existing = client.tags(Repo(repository.registry, repository.repository))
        try:
            tags = scheme_tags(settings.scheme, commit_sha=settings.commit_sha,
                               ref_slug=settings.ref_slug, git_tag=settings.git_tag,
                               existing_tags=existing)
        except ValueError as e:
            raise UsageError(str(e), "scheme") from None
        targets += [repository.with_tag(tag) for tag in tags]
    return targets


STEP = Step(name="tag", help=__doc__ or "", settings=Settings, execute=execute,
            validate=validate)
