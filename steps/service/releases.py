"""What `docker-cd register` sends for a release: its members and its template hash (one
image in a repository with a template: the member `app` and the hash).

The members are the images the pipeline built (CD_IMAGE_<NAME>, or --member NAME=IMAGE), each
named by the Compose service it runs as, and the third-party images of the template (a
database), pinned by the digest their registry gives for the tag the template names. A
third-party image whose registry does not answer is an error naming the service, unless it is
left out on purpose (--unpinned SERVICE: it then runs its tag, which the template hash covers).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steps.images.reference import parse_reference, split_image
from steps.registry import RegistryClient, RegistryError, Repo
from steps.release import members
from steps.runtime.errors import ExternalError, UsageError
from steps.runtime.log import Log
from steps.template import TemplateError, deploy_files_hash, load

ONE_IMAGE_MEMBER = "app"  # the one member of a release of one image (as POST /images names it)


@dataclass(frozen=True)
class Member:
    """One image of a release."""

    name: str
    repository: str
    digest: str
    built: bool

    def body(self) -> dict[str, Any]:
        return {"name": self.name, "repository": self.repository, "digest": self.digest,
                "built": self.built}

    def __str__(self) -> str:
        return f"{self.name}={self.repository}@{self.digest}" + ("" if self.built
                                                                 else " (third-party)")


def built_members(given: Mapping[str, str], environ: Mapping[str, str],
                  services: Iterable[str]) -> list[Member]:
    """The built members: --member NAME=IMAGE, else every CD_IMAGE_<NAME> (named by the
    template's service whose variable it is)."""
    services = list(services)
    if given:
        found = dict(given)
        where = {name: f"--member {name}" for name in given}
    else:
        by_variable = {members.variable(s): s for s in services}
        found, where = {}, {}
        for var, value in members.member_variables(environ).items():
            name = by_variable.get(var, var[len(members.PREFIX):].lower())
            found[name], where[name] = value, var
    result, problems = [], []
    for name, image in sorted(found.items()):
        if problem := members.name_problem(name):
            problems.append(f"{where[name]}: {problem}")
            continue
        if services and name not in services:
            problems.append(f"{where[name]}: the template has no service {name} (services: "
                            f"{', '.join(sorted(services))})")
            continue
        ref = split_image(image)
        if ref is None:
            problems.append(f"{where[name]}: {image!r} names no digest; give "
                            "repository@sha256:... (the build job's dotenv)")
            continue
        result.append(Member(name, ref[0], ref[1], built=True))
    if problems:
        raise UsageError("; ".join(problems), "member")
    return result


def template_services(directory: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """service -> image as compose.yml names it (variables that are not set left as they are)."""
    if not directory.is_dir():
        raise UsageError(f"template directory {directory} does not exist: a release holds the "
                         "template's hash; set --template-dir (CD_TEMPLATE_DIR)", "template_dir")
    try:
        template = load(directory, "", environ, lenient=True)
    except TemplateError as e:
        raise UsageError(f"the template cannot be read: {e.message}", "template_dir") from e
    return {name: str(spec.get("image") or "")
            for name, spec in template.model["services"].items()}


def third_party(services: Mapping[str, str], built: Iterable[Member], unpinned: Iterable[str],
                registry: RegistryClient, log: Log) -> list[Member]:
    """The template's other services' images, pinned by digest (asked of their registry)."""
    skip = {m.name for m in built} | set(unpinned)
    found = []
    for name, image in sorted(services.items()):
        if name in skip or not image or "$" in image:
            continue
        try:
            ref = parse_reference(image)
        except ValueError as e:
            raise UsageError(f"service {name}: {e}", "template_dir") from e
        digest = ref.digest
        if digest is None:
            try:
                digest = registry.head_manifest(Repo(ref.registry, ref.repository), ref.reference)
            except RegistryError as e:
                fix = ("Give the credentials of its registry (--registry-user/--registry-password"
                       " for --registry, DOCKER_AUTH_CONFIG or the Docker config)" if e.refused
                       else "Make its registry reachable")
                error = UsageError if e.refused else ExternalError
                raise error(
                    f"service {name}: cannot pin {image} by digest: {e.message}. {fix}, pin it "
                    f"in the template (image@sha256:...), or leave it out of the release with "
                    f"--unpinned {name} (CD_UNPINNED)") from e
            if digest is None:
                raise UsageError(f"service {name}: {image} does not exist in its registry",
                                 "template_dir")
            log.info(f"Pinned the third-party image of {name}: {image} is {digest}")
        found.append(Member(name, ref.name, digest, built=False))
    return found


def has_template(directory: Path) -> bool:
    """Whether the directory holds an application template (compose.yml or compose.yaml)."""
    from steps.template.load import BASE_NAMES

    return any((directory / name).is_file() for name in BASE_NAMES)


def template_hash(directory: Path) -> str:
    """The release's template hash (see steps.template.deploy_files_hash)."""
    try:
        return deploy_files_hash(directory)
    except ValueError as e:
        raise UsageError(str(e), "template_dir") from e
