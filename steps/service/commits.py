"""What the promotion service knows of a commit's images in a repository: the digests it
registered, newest first, and the environments where each was verified.

A build asks it to reuse the commit's image instead of building another; the release tags ask
it which digest of the commit was verified.
"""

from __future__ import annotations

from typing import NamedTuple

from steps.service.client import ServiceClient


class CommitImage(NamedTuple):
    """One registered image of the commit."""

    digest: str
    verified_in: tuple[str, ...]  # environments where its last verification passed


def commit_images(client: ServiceClient, repository: str, commit: str) -> list[CommitImage]:
    """The commit's images in `repository` the service registered (not revoked): the verified
    ones first, each group newest first."""
    found = client.get("images", repository=repository, commit_sha=commit, revoked="false")
    images = []
    for image in found or []:
        detail = client.get(f"images/{image['id']}")
        verified = tuple(e["environment"] for e in detail.get("environments") or []
                         if (e.get("verification") or {}).get("passed"))
        images.append(CommitImage(image["digest"], verified))
    return sorted(images, key=lambda i: not i.verified_in)  # stable: newest first within
