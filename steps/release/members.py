"""The members of a release: the images a pipeline built, one per Compose service, by digest.

A build job writes `CD_IMAGE_<NAME>=repository@sha256:...` for the member called `name` (the
Compose service it runs as); register, gate and deploy read the same variables. Plain Python.

    variable(name)            api -> CD_IMAGE_API, front-end -> CD_IMAGE_FRONT_END
    member_variables(environ) every CD_IMAGE_<NAME> set, the one-image outputs left out
    members_of(services, environ)   service -> image, for the services whose variable is set
    pinning_problems(...)     every member's service that cannot run the member's digest
    by_tag(images, members)   the other services, named by tag alone (nothing pins them)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from steps.images.reference import parse_reference, split_image

PREFIX = "CD_IMAGE_"
# The one-image build's outputs (CD_IMAGE_REPOSITORY, ...): never a member's variable.
RESERVED = frozenset({"repository", "digest", "tags"})
MEMBER_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


def variable(name: str) -> str:
    """The variable holding member `name`: upper case, every char outside [A-Z0-9] -> `_`."""
    return PREFIX + re.sub(r"[^A-Z0-9]", "_", name.upper())


def name_problem(name: str) -> str | None:
    """Why `name` cannot be a member's name, or None."""
    if not MEMBER_NAME.fullmatch(name):
        return (f"{name!r} is not a member name: the Compose service name, lower case letters, "
                "digits, '-' and '_' (up to 63)")
    if name in RESERVED:
        return (f"{name!r} cannot be a member name: {variable(name)} is the one-image build's "
                "output; rename the service")
    return None


def member_variables(environ: Mapping[str, str]) -> dict[str, str]:
    """Every CD_IMAGE_<NAME> variable set (non-empty), without the one-image outputs."""
    reserved = {variable(n) for n in RESERVED}
    return {k: v for k, v in sorted(environ.items())
            if k.startswith(PREFIX) and len(k) > len(PREFIX) and k not in reserved and v}


def members_of(services: Iterable[str], environ: Mapping[str, str]) -> dict[str, str]:
    """service -> image (the variable's value) for every service whose CD_IMAGE_<NAME> is set."""
    return {s: environ[variable(s)] for s in sorted(services)
            if environ.get(variable(s)) and s not in RESERVED}


def pinning_problems(images: Mapping[str, str], members: Mapping[str, str]) -> list[str]:
    """Every member whose service cannot run exactly its digest.

    `images` is service -> the image the rendered template gives it; `members` is service ->
    the value of its CD_IMAGE_<NAME>. A service runs its member when the template names it by
    its variable, by that very image, or by a tag of the member's repository (the tag the
    release pinned: a third-party image, or a built one the template names by tag); a
    service pinned to another digest, or naming another repository, is a contradiction to fix.
    """
    problems = []
    for service, wanted in sorted(members.items()):
        var = variable(service)
        ref = split_image(wanted)
        if ref is None:
            problems.append(
                f"service {service}: {var} is {wanted!r}, not pinned by digest; a member of a "
                f"release is deployed as repository@sha256:... (the build job's or register's "
                f"{var})")
        elif (image := images.get(service) or "") != wanted and not _tag_of(image, ref[0]):
            problems.append(
                f"service {service}: its image is {image!r}, not ${{{var}}} ({wanted}); write "
                f"`image: ${{{var}}}` in the template (or a tag of {ref[0]})")
    return problems


def by_tag(images: Mapping[str, str], members: Mapping[str, str]) -> dict[str, str]:
    """service -> image for the services that are no member and name their image by tag
    alone: what they run is whatever the tag points at when the engine pulls it."""
    return {service: image for service, image in sorted(images.items())
            if service not in members and image and "@" not in image}


def _tag_of(image: str, repository: str) -> bool:
    """Is `image` a tag (no digest) of `repository`, as the Docker CLI reads both names?"""
    try:
        ref, repo = parse_reference(image), parse_reference(repository)
    except ValueError:
        return False
    return ref.digest is None and ref.name == repo.name


def unused(services: Iterable[str], environ: Mapping[str, str]) -> list[str]:
    """CD_IMAGE_<NAME> variables that name no service of the template (likely a typo)."""
    known = {variable(s) for s in services}
    return [k for k in member_variables(environ) if k not in known]
