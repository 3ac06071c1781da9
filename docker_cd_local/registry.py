"""A Docker Distribution registry process on 127.0.0.1, with htpasswd basic auth on request.

Used by the local pipeline (docker_cd_local.stack), the tests and the benchmarks, so all of
them run against the same registry.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import requests

REGISTRY_BIN = shutil.which("docker-registry") or "/usr/bin/docker-registry"


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
