"""Real parts for tests: busybox images FROM scratch, the engine client, and (from the local
pipeline's package) a Docker Distribution registry process.

Used by tests/conftest.py fixtures and by benchmarks/, so both run against the same things.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from docker_cd_local.registry import Registry, free_port, start_registry, wait_for_http

__all__ = ["BUSYBOX", "TEST_LABEL", "ImageFactory", "Registry", "docker_client", "free_port",
           "read_dotenv", "start_registry", "wait_for_http"]

BUSYBOX = Path("/bin/busybox")
TEST_LABEL = "docker-cd-test"


def read_dotenv(path: str | Path) -> dict[str, str]:
    """The KEY=VALUE lines a step wrote with --dotenv; empty when it wrote no file."""
    path = Path(path)
    if not path.exists():
        return {}
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


@dataclass
class ImageFactory:
    """Builds small images FROM scratch with static busybox; removes what it built."""

    client: object  # docker.DockerClient
    built: list[str] = field(default_factory=list)

    def build(self, tag: str | None = None, files: Mapping[str, str | bytes] | None = None,
              dockerfile: str = "", labels: Mapping[str, str] | None = None,
              filler_mb: Mapping[str, int] | None = None) -> str:
        """Build an image; return its tag. `dockerfile` lines are appended after busybox.

        `files` are written into the context (COPY them in `dockerfile`); `filler_mb` adds
        layers of random data of the given sizes (for size-dependent tests and benchmarks).
        """
        tag = tag or f"docker-cd-test/img-{uuid.uuid4().hex[:10]}:latest"
        with tempfile.TemporaryDirectory(prefix="docker-cd-ctx-") as tmp:
            ctx = Path(tmp)
            shutil.copy(BUSYBOX, ctx / "busybox")
            lines = ["FROM scratch", "COPY busybox /bin/busybox",
                     'RUN ["/bin/busybox", "--install", "-s", "/bin"]']
            for name, size in (filler_mb or {}).items():
                (ctx / name).write_bytes(os.urandom(size * 1024 * 1024))
                lines.append(f"COPY {name} /data/{name}")
            for name, content in (files or {}).items():
                path = ctx / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(content if isinstance(content, bytes) else content.encode())
            lines.append(dockerfile)
            (ctx / "Dockerfile").write_text("\n".join(lines) + "\n")
            all_labels = {TEST_LABEL: "1", **(labels or {})}
            self.client.images.build(path=str(ctx), tag=tag, labels=all_labels, rm=True,
                                     forcerm=True)
        self.built.append(tag)
        return tag

    def cleanup(self) -> None:
        for tag in reversed(self.built):
            with contextlib.suppress(Exception):  # already gone is fine
                self.client.images.remove(tag, force=True)
        self.built.clear()


def docker_client():
    """A docker-py client for the local engine; RuntimeError with a clear message when none
    answers (the steps' own client, so tests reach the engine the way the steps do)."""
    from steps.images.engine import docker_client as engine_client
    from steps.runtime.errors import ExternalError

    try:
        return engine_client(timeout=120)
    except ExternalError as e:
        raise RuntimeError(f"{e.message} (start dockerd; .ci/run does)") from e
