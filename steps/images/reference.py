"""Image references (`registry/path:tag@digest`) parsed the way the Docker CLI reads them.

Pure: no I/O. Shared by every step that names an image: by tag to build and push it, by
digest (`repository@sha256:...`) from then on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace

DOCKER_HUB = "docker.io"
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
DIGEST = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-fA-F0-9]{32,}")


@dataclass(frozen=True)
class Reference:
    """An image reference: registry host, repository path, and a tag and/or a digest."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """`registry/repository`, as tags and digests are appended to it."""
        return f"{self.registry}/{self.repository}"

    @property
    def reference(self) -> str:
        """What the manifest endpoint takes: the digest if known, else the tag."""
        return self.digest or self.tag or "latest"

    def with_tag(self, tag: str) -> Reference:
        return replace(self, tag=tag, digest=None)

    def with_digest(self, digest: str) -> Reference:
        return replace(self, tag=None, digest=digest)

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def parse_reference(text: str) -> Reference:
    """Parse `[registry/]path[:tag][@digest]`; raise ValueError saying what is wrong."""
    rest = text.strip()
    if not rest:
        raise ValueError("empty image reference")
    digest = None
    if "@" in rest:
        rest, digest = rest.rsplit("@", 1)
        if not DIGEST.fullmatch(digest):
            raise ValueError(f"{text!r}: {digest!r} is not a digest (like sha256:<64 hex>)")
    tag = None
    last = rest.rsplit("/", 1)[-1]
    if ":" in last:
        rest, tag = rest.rsplit(":", 1)
        if not TAG.fullmatch(tag):
            raise ValueError(f"{text!r}: {tag!r} is not a valid tag ([A-Za-z0-9_.-], up to 128)")
    parts = rest.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        registry, path = parts[0], parts[1:]
    else:
        registry, path = DOCKER_HUB, parts
        if len(path) == 1:
            path = ["library", *path]
    for component in path:
        if not _COMPONENT.fullmatch(component):
            raise ValueError(f"{text!r}: {component!r} is not a valid repository name component"
                             " (lower case letters, digits, and . _ - between them)")
    return Reference(registry, "/".join(path), tag, digest)


def is_bare_tag(text: str) -> bool:
    """True when `text` is only a tag (no repository), as in `docker-cd tag SOURCE latest`."""
    return bool(TAG.fullmatch(text))


def untagged(ref: str) -> str:
    """`registry:5000/app:v1` -> `registry:5000/app`: the repository an image was tagged in."""
    name, _, tag = ref.rpartition(":")
    return name if name and "/" not in tag else ref


def split_image(image: str) -> tuple[str, str] | None:
    """`registry/app@sha256:...` -> (`registry/app`, `sha256:...`); None without a digest."""
    repository, sep, digest = image.partition("@")
    if not sep or not digest.startswith("sha256:"):
        return None
    return untagged(repository), digest


def digest_reference(ref: str, repo_digests: Iterable[str]) -> str | None:
    """`ref` as `repository@sha256:...`, picked from the image's RepoDigests, if it has one."""
    wanted = untagged(ref)
    return next((d for d in repo_digests if d.partition("@")[0] == wanted), None)
