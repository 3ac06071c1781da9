"""Real parts for tests: a Docker Distribution registry process and busybox images FROM scratch.

Used by tests/conftest.py fixtures and by benchmarks/, so both run against the same things.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import requests

BUSYBOX = Path("/bin/busybox")
REGISTRY_BIN = shutil.which("docker-registry") or "/usr/bin/docker-registry"
TEST_LABEL = "docker-cd-test"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, timeout: float = 15.0, ok=(200, 401)) -> None:
    """Wait until `url` answers with one of `ok` statuses, or raise."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            response = requests.get(url, timeout=1)
            if response.status_code in ok:
                return
            last = response.status_code
        except (requests.ConnectionError, requests.Timeout) as e:  # a busy server may be slow
            last = e
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout}s (last: {last})")


def read_dotenv(path: str | Path) -> dict[str, str]:
    """The KEY=VALUE lines a step wrote with --dotenv; empty when it wrote no file."""
    path = Path(path)
    if not path.exists():
        return {}
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


@dataclass
class Registry:
    """A running docker-registry process on 127.0.0.1."""

    host: str
    process: subprocess.Popen
    root: Path
    user: str | None = None
    password: str | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def auth(self) -> tuple[str, str] | None:
        return (self.user, self.password) if self.user and self.password else None

    @property
    def auth_config(self) -> dict[str, str] | None:
        """Credentials in docker-py's `auth_config` form."""
        return {"username": self.user, "password": self.password} if self.auth else None

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.root, ignore_errors=True)


def start_registry(user: str | None = None, password: str | None = None,
                   extra_config: str = "") -> Registry:
    """Start Docker Distribution on a free port, with htpasswd basic auth when a user is given."""
    root = Path(tempfile.mkdtemp(prefix="docker-cd-registry-"))
    port = free_port()
    # In a GitLab job with a docker:dind service the engine runs elsewhere: listen on all
    # addresses and name this job's host (see .gitlab-ci.yml). Here: 127.0.0.1 only.
    bind = os.environ.get("DOCKER_CD_TEST_BIND", "127.0.0.1")
    host = os.environ.get("DOCKER_CD_TEST_REGISTRY_HOST", "127.0.0.1")
    auth = ""
    if user and password:
        import bcrypt

        digest = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()
        (root / "htpasswd").write_text(f"{user}:{digest}\n")
        auth = f"auth:\n  htpasswd:\n    realm: docker-cd-test\n    path: {root / 'htpasswd'}\n"
    (root / "config.yml").write_text(
        "version: 0.1\n"
        "log:\n  level: error\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
        "  delete:\n    enabled: true\n"
        f"http:\n  addr: {bind}:{port}\n"
        f"{auth}{extra_config}"
    )
    log = open(root / "registry.log", "wb")  # noqa: SIM115 - lives as long as the process
    process = subprocess.Popen([REGISTRY_BIN, "serve", str(root / "config.yml")],
                               stdout=log, stderr=subprocess.STDOUT)
    registry = Registry(f"{host}:{port}", process, root, user, password)
    try:
        wait_for_http(f"{registry.url}/v2/")
    except RuntimeError:
        registry.stop()
        raise
    return registry


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
