"""Tags put on an image already in a registry, registry-side: the manifest's bytes PUT under
each new tag (the digest never changes), the content it references mounted or streamed into
another repository first. Shared by `docker-cd tag` and a build that reuses its commit's image.
"""

from __future__ import annotations

from typing import Any

from steps.images.reference import Reference
from steps.registry.client import RegistryClient
from steps.registry.manifest import Manifest, Repo
from steps.runtime.errors import Refused, UsageError
from steps.runtime.log import Log


def tag_image(client: RegistryClient, manifest: Manifest, src: Repo,
              targets: list[Reference], *, immutable: bool = False,
              log: Log | None = None) -> list[dict[str, str]]:
    """Point every target tag at the manifest; HEAD first, write only what must change."""
    current = {str(t): client.head_manifest(_repo(t, push=True), t.tag or "") for t in targets}
    moved = {ref: digest for ref, digest in current.items()
             if digest and digest != manifest.digest}
    if immutable and moved:
        raise Refused(f"--immutable: {len(moved)} tag(s) already point at another digest; "
                      "nothing was changed",
                      [f"{ref} points at {digest}, not {manifest.digest}"
                       for ref, digest in moved.items()])
    results = []
    copied: set[str] = set()
    for target in targets:
        ref = str(target)
        if current[ref] == manifest.digest:
            results.append({"reference": ref, "action": "unchanged"})
            _say(log, f"{ref} already points at {manifest.digest}")
            continue
        dst = _repo(target, push=True)
        if (dst.registry, dst.name) != (src.registry, src.name) and target.name not in copied:
            copy_content(client, manifest, src, dst, log)
            copied.add(target.name)
        client.put_manifest(dst, target.tag or "", manifest)
        action = f"moved from {current[ref]}" if current[ref] else "added"
        results.append({"reference": ref, "action": action})
        _say(log, f"{ref} -> {manifest.digest} ({action})")
    return results


def copy_content(client: RegistryClient, manifest: Manifest, src: Repo, dst: Repo,
                 log: Log | None = None) -> None:
    """Make everything the manifest references exist in `dst`: mount or stream blobs, and
    store an index's child manifests by digest."""
    if manifest.is_index:
        for child in manifest.children():
            if client.head_manifest(dst, child["digest"]) == child["digest"]:
                continue
            child_manifest = client.get_manifest(src, child["digest"])
            if child_manifest is None:
                raise UsageError(f"{src.registry}/{src.name}@{child['digest']} (in the index) "
                                 "is missing from the source registry", "source")
            copy_content(client, child_manifest, src, dst, log)
            client.put_manifest(dst, child["digest"], child_manifest)
        return
    blobs = manifest.blobs()
    same_registry = src.registry == dst.registry

    def one(descriptor: dict[str, Any]) -> str:
        digest = descriptor["digest"]
        if same_registry and client.mount_blob(dst, digest, src.name):
            return "mounted"
        if client.blob_exists(dst, digest):
            return "present"
        client.copy_blob(src, dst, descriptor)
        return "copied"

    if len(blobs) <= 1:
        actions = [one(b) for b in blobs]
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(4, len(blobs))) as pool:
            actions = list(pool.map(one, blobs))
    counts = {a: actions.count(a) for a in sorted(set(actions))}
    _say(log, f"{dst.registry}/{dst.name}: blobs " + ", ".join(f"{n} {a}"
                                                              for a, n in counts.items()))


def _repo(ref: Reference, push: bool = False) -> Repo:
    return Repo(ref.registry, ref.repository, push)


def _say(log: Log | None, text: str) -> None:
    if log:
        log.info(text)
