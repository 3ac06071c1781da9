"""The CI template's runner image (the root Dockerfile), built the way this project's CI builds
it: on a Debian base made with mmdebstrap, the project installed offline from a wheelhouse.

Kept between test sessions under a tag keyed by what went into it (the project's files and the
base), so only a change of the code rebuilds it. The end-to-end pipeline runs its jobs in it.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

from tests.debian_images import ROOT, _locked, debian_base_image, wheelhouse
from tests.support import TEST_LABEL

RUNNER_REPOSITORY = "docker-cd-test/runner"
# What a job image needs besides docker-cd: a shell (Debian's minbase has bash), Python and its
# venv module, CA certificates for registries over HTTPS, git (a deploy restores an older
# release's template from its commit).
RUNNER_PACKAGES = ("python3", "python3-venv", "ca-certificates", "git")
# gitlab-ci-local's helper container copies the job's files and artifacts with rsync.
HELPER_PACKAGES = ("rsync",)
SOURCES = ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md", "steps",
           "promotion_service", "docker_cd_local")


def _key(base: str) -> str:
    digest = hashlib.sha256(base.encode())
    for name in SOURCES:
        path = ROOT / name
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            if "__pycache__" not in file.parts:
                digest.update(str(file.relative_to(ROOT)).encode())
                digest.update(file.read_bytes())
    return digest.hexdigest()[:12]


def runner_image(client) -> str:
    """The runner image's tag: the root Dockerfile built on the Debian base, offline."""
    base = debian_base_image(client, RUNNER_PACKAGES)
    tag = f"{RUNNER_REPOSITORY}:{_key(base)}"
    with _locked(f"runner-{tag.rsplit(':', 1)[1]}"):
        if client.images.list(name=tag):
            return tag
        wheels = wheelhouse("runner")
        with tempfile.TemporaryDirectory(prefix="docker-cd-runner-") as tmp:
            context = Path(tmp)
            for name in SOURCES:
                source = ROOT / name
                if source.is_dir():
                    shutil.copytree(source, context / name,
                                    ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy(source, context / name)
            shutil.copytree(wheels, context / "wheelhouse")
            client.images.build(path=str(context), tag=tag, rm=True, forcerm=True,
                                labels={TEST_LABEL: "1"},
                                buildargs={"BASE": base, "PIP_NO_INDEX": "1",
                                           "PIP_FIND_LINKS": "/src/wheelhouse"})
    return tag


def helper_image(client) -> str:
    """An image for gitlab-ci-local's helper container (sh, chown, bash, rsync)."""
    return debian_base_image(client, HELPER_PACKAGES)
