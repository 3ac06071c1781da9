"""Manifests as the registry serves them, and the repositories that hold them. Pure."""

from __future__ import annotations

import json
from typing import Any, NamedTuple

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
INDEX_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST)
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
ACCEPT = ", ".join((*INDEX_TYPES, *MANIFEST_TYPES))


class Repo(NamedTuple):
    """A repository on a registry, and whether the caller will push to it (token scope)."""

    registry: str
    name: str
    push: bool = False

    @property
    def scope(self) -> str:
        return f"repository:{self.name}:{'pull,push' if self.push else 'pull'}"


class Manifest(NamedTuple):
    """A manifest exactly as the registry serves it: re-PUT these bytes and the digest holds."""

    body: bytes
    media_type: str
    digest: str

    def json(self) -> dict[str, Any]:
        return json.loads(self.body)

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES or "manifests" in self.json()

    def children(self) -> list[dict[str, Any]]:
        """The manifests an index points at (descriptors with digest, mediaType, size)."""
        return list(self.json().get("manifests", [])) if self.is_index else []

    def blobs(self) -> list[dict[str, Any]]:
        """Config and layer descriptors of an image manifest (none for an index)."""
        if self.is_index:
            return []
        data = self.json()
        return [d for d in [data.get("config"), *data.get("layers", [])] if d]


def digest_of(body: bytes) -> str:
    """The sha256 digest a registry gives these bytes."""
    import hashlib  # loads OpenSSL: only when a digest must be computed

    return "sha256:" + hashlib.sha256(body).hexdigest()
