"""Third-party images an application runs but does not build, put in the local registry before
its pipeline: each `vendor/<name>/` directory of the application (a Dockerfile FROM scratch
with busybox) becomes `<registry>/vendor/<name>:<version>`, the version being the Dockerfile's
`org.opencontainers.image.version` label. The engine keeps no copy, so a deploy pulls it with
the job's credentials, as from a vendor's registry.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

from docker_cd_local.pipelines import BUSYBOX
from docker_cd_local.registry import Registry
from steps.images.engine import docker_client

_VERSION = re.compile(r"org\.opencontainers\.image\.version=\"?([\w.-]+)")


def vendor_images(app: Path) -> dict[str, Path]:
    """The application's vendor images: name -> directory."""
    return {d.name: d for d in sorted((app / "vendor").glob("*")) if (d / "Dockerfile").is_file()}


def push_vendor_image(directory: Path, registry: Registry, change: str = "") -> str:
    """Build `directory` and push it as `<registry>/vendor/<name>:<version>`; return
    repository@digest. A `change` (a label) gives the same tag another digest, as a vendor
    that moves a tag does."""
    version = _VERSION.search((directory / "Dockerfile").read_text())
    name = f"{registry.host}/vendor/{directory.name}:{version.group(1) if version else 'latest'}"
    client = docker_client()
    with tempfile.TemporaryDirectory(prefix="docker-cd-vendor-") as tmp:
        context = Path(tmp) / directory.name
        shutil.copytree(directory, context)
        shutil.copy(BUSYBOX, context / "busybox")
        image, _ = client.images.build(path=str(context), tag=name, rm=True, forcerm=True,
                                       labels={"io.docker-cd.vendor-change": change})
    try:
        repository, tag = name.rsplit(":", 1)
        for line in client.images.push(repository, tag, auth_config=registry.auth_config,
                                       stream=True, decode=True):
            if "error" in line:
                raise RuntimeError(f"pushing {name}: {line['error']}")
        digests = client.images.get(image.id).attrs["RepoDigests"]
        [pushed] = [d for d in digests if d.startswith(repository + "@")]
        return pushed
    finally:
        client.images.remove(image.id, force=True)
