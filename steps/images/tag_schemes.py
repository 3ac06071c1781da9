"""Tag schemes a team can ask for: which tags an image gets from the pipeline's commit and ref.

Pure: no I/O. `sha` gives the short (8) and long commit SHA; `ref` the ref slug; `semver`
turns a git tag `v1.2.3` into `1.2.3`, `1.2`, `1` and `latest`, each moving only when this
version is the highest of its line among the tags the repository already has, so a patch of
an old line never takes `1` or `latest` away from a newer release. A prerelease
(`v2.0.0-rc.1`) gets only its full version.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

from steps.images.reference import TAG

SCHEMES = ("sha", "ref", "semver")
SHORT_SHA = 8  # as GitLab's CI_COMMIT_SHORT_SHA
_SEMVER = re.compile(
    r"v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?")


class Version(NamedTuple):
    """A semantic version."""

    major: int
    minor: int
    patch: int
    prerelease: str = ""
    build: str = ""

    @property
    def core(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"

    @property
    def full(self) -> str:
        """The version as a Docker tag: `+build` becomes `_build` (tags cannot hold `+`)."""
        text = self.core + (f"-{self.prerelease}" if self.prerelease else "")
        return text + (f"_{self.build}" if self.build else "")


def parse_version(text: str) -> Version | None:
    """`v1.2.3`, `1.2.3-rc.1`, `1.2.3+build.5` -> Version; anything else -> None."""
    match = _SEMVER.fullmatch(text.strip())
    if not match:
        return None
    major, minor, patch, pre, build = match.groups()
    return Version(int(major), int(minor), int(patch), pre or "", build or "")


def sha_tags(commit_sha: str) -> list[str]:
    """The short and the full commit SHA."""
    sha = commit_sha.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{7,64}", sha):
        raise ValueError(f"not a commit SHA: {commit_sha!r}")
    return list(dict.fromkeys([sha[:SHORT_SHA], sha]))


def ref_tags(ref_slug: str) -> list[str]:
    """The ref slug (GitLab's CI_COMMIT_REF_SLUG is already a valid tag)."""
    if not TAG.fullmatch(ref_slug):
        raise ValueError(f"not a valid tag: {ref_slug!r} (use the slugged ref, CI_COMMIT_REF_SLUG)")
    return [ref_slug]


def semver_tags(git_tag: str, existing_tags: Iterable[str]) -> list[str]:
    """`v1.2.3` -> 1.2.3 plus 1.2, 1, latest where this release is the highest of that line."""
    version = parse_version(git_tag)
    if version is None:
        raise ValueError(f"git tag {git_tag!r} is not a semantic version like v1.2.3")
    if version.prerelease:
        return [version.full]
    releases = [v for v in map(parse_version, existing_tags) if v and not v.prerelease]

    def highest(same_line: Callable[[Version], bool]) -> bool:
        return all((v.major, v.minor, v.patch) <= (version.major, version.minor, version.patch)
                   for v in releases if same_line(v))

    tags = [version.full]
    if highest(lambda v: (v.major, v.minor) == (version.major, version.minor)):
        tags.append(f"{version.major}.{version.minor}")
    if highest(lambda v: v.major == version.major):
        tags.append(f"{version.major}")
    if highest(lambda v: True):
        tags.append("latest")
    return tags


def scheme_tags(schemes: Sequence[str], *, commit_sha: str | None, ref_slug: str | None,
                git_tag: str | None, existing_tags: Iterable[str] = ()) -> list[str]:
    """The tags the schemes ask for, in order, without duplicates.

    Raises ValueError naming the variable a scheme needs when it is missing or malformed.
    """
    tags: list[str] = []
    for scheme in schemes:
        if scheme == "sha":
            if not commit_sha:
                raise ValueError("scheme sha needs the commit SHA (CI_COMMIT_SHA or CD_COMMIT_SHA)")
            tags += sha_tags(commit_sha)
        elif scheme == "ref":
            if not ref_slug:
                raise ValueError("scheme ref needs the ref slug "
                                 "(CI_COMMIT_REF_SLUG or CD_REF_SLUG)")
            tags += ref_tags(ref_slug)
        elif scheme == "semver":
            if not git_tag:
                raise ValueError("scheme semver needs a git tag like v1.2.3 (CI_COMMIT_TAG or "
                                 "CD_GIT_TAG); run it only in tag pipelines")
            tags += semver_tags(git_tag, existing_tags)
        else:
            raise ValueError(f"unknown scheme {scheme!r}; choose from {', '.join(SCHEMES)}")
    return list(dict.fromkeys(tags))


def needs_existing_tags(schemes: Sequence[str], git_tag: str | None) -> bool:
    """Whether deriving the tags needs the repository's tag list (a semver release does)."""
    if "semver" not in schemes or not git_tag:
        return False
    version = parse_version(git_tag)
    return version is not None and not version.prerelease

