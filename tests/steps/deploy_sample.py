"""The two-service sample application the deploy tests and benchmarks/deploy.py roll out.

`web`: busybox httpd FROM scratch serving "version N" on 8080, a config file mounted at
/www/message.txt, a health check on /health (the "bad" image has none, so it never becomes
healthy); it waits for `db` to be healthy. `db`: busybox httpd over a named volume /data.
Overlays per environment publish web on a different host port.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import requests

from tests.support import ImageFactory, free_port

WEB_DOCKERFILE = 'COPY www /www\nCMD ["httpd", "-f", "-p", "8080", "-h", "/www"]'

# One service of that web image, for the tests that need only an image to deploy.
WEB_ONLY = """\
services:
  web:
    image: ${CD_IMAGE}
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/health"]
      interval: 100ms
      timeout: 5s
      retries: 30
    stop_grace_period: 1s
"""

COMPOSE = """\
services:
  web:
    image: ${CD_IMAGE:?set CD_IMAGE to the image being released}
    depends_on:
      db: {condition: service_healthy}
    configs:
      - source: message
        target: /www/message.txt
    environment:
      DB_URL: http://db/
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/health"]
      interval: 100ms
      timeout: 5s
      retries: 10
    stop_grace_period: 2s
  db:
    image: ${DB_IMAGE}
    command: ["sh", "-c", "echo ok > /data/health && exec httpd -f -p 80 -h /data"]
    environment:
      DB_REVISION: ${DB_REVISION:-1}
    volumes: ["data:/data"]
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1/health"]
      interval: 100ms
      timeout: 5s
      retries: 10
    stop_grace_period: 2s
volumes:
  data: {}
configs:
  message:
    file: ./message.txt
x-docker-cd:
  verify:
    - name: home page
      url: http://127.0.0.1:${WEB_PORT}/
      body: version
      retries: 3
      interval: 200ms
    - name: data volume mounted
      command: ["test", "-f", "/data/health"]
      service: db
"""

OVERLAY = """\
services:
  web:
    ports: ["127.0.0.1:${WEB_PORT:?set WEB_PORT}:8080"]
"""

# Staging's own configuration file: the overlay replaces the base file's config source.
STAGING_EXTRA = """\
configs:
  message:
    file: ./message.staging.txt
"""


@dataclass
class Sample:
    """Images, a template directory and the variables a deploy of the sample needs."""

    directory: Path
    project: str
    images: dict[str, str]
    ports: dict[str, int]
    db_image: str

    def env(self, environment: str, image: str = "v1", **extra: str) -> dict[str, str]:
        """Variables for `docker-cd deploy` of this sample to an environment."""
        return {"CD_IMAGE": self.images[image], "DB_IMAGE": self.db_image,
                "WEB_PORT": str(self.ports[environment]), "CD_PROJECT": self.project,
                "CD_TEMPLATE_DIR": str(self.directory), "CD_HEALTH_TIMEOUT": "60", **extra}

    def url(self, environment: str, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.ports[environment]}{path}"

    def get(self, environment: str, path: str = "/") -> str:
        return requests.get(self.url(environment, path), timeout=5).text

    def set_message(self, text: str) -> None:
        (self.directory / "message.txt").write_text(text)


def build_sample(images: ImageFactory, root: Path, environments=("test", "staging")) -> Sample:
    """Build the images (v1, v2, bad) and write the template with one overlay per environment."""
    tag = uuid.uuid4().hex[:8]
    built = {}
    for version in ("v1", "v2"):
        built[version] = images.build(
            tag=f"docker-cd-test/web-{tag}:{version}", dockerfile=WEB_DOCKERFILE,
            files={"www/index.html": f"version {version[1:]}\n", "www/health": "ok\n"})
    built["bad"] = images.build(tag=f"docker-cd-test/web-{tag}:bad", dockerfile=WEB_DOCKERFILE,
                                files={"www/index.html": "version bad\n"})
    db = images.build(tag=f"docker-cd-test/db-{tag}:1", dockerfile="RUN mkdir /data")
    root.mkdir(parents=True, exist_ok=True)
    (root / "compose.yml").write_text(COMPOSE)
    for env in environments:
        (root / f"compose.{env}.yml").write_text(OVERLAY + STAGING_EXTRA * (env == "staging"))
    (root / "message.txt").write_text("hello from the template\n")
    (root / "message.staging.txt").write_text("hello from staging\n")
    return Sample(root, f"dcdtest-{tag}", built, {e: free_port() for e in environments}, db)


def remove_project(client, project: str) -> None:
    """Remove every container, network and volume labelled with the project (tests only)."""
    import docker.errors

    label = {"label": f"io.docker-cd.project={project}"}
    for c in client.api.containers(all=True, filters=label):
        with contextlib.suppress(docker.errors.NotFound):
            client.api.remove_container(c["Id"], force=True)
    for n in client.api.networks(filters=label):
        with contextlib.suppress(docker.errors.NotFound):
            client.api.remove_network(n["Id"])
    for v in client.api.volumes(filters=label).get("Volumes") or []:
        with contextlib.suppress(docker.errors.NotFound):
            client.api.remove_volume(v["Name"], force=True)


@dataclass
class Poller:
    """Polls a URL every `interval` seconds in a thread; counts failures and the longest gap."""

    url: str
    interval: float = 0.01
    ok: int = 0
    failed: int = 0
    longest_gap: float = 0.0
    bodies: list[str] = field(default_factory=list)
    seen: list[tuple[float, str]] = field(default_factory=list)  # (monotonic time, new body)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Poller:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()

    def _run(self) -> None:
        session = requests.Session()
        last_ok = time.monotonic()
        failing = False
        while not self._stop.is_set():
            try:
                response = session.get(self.url, timeout=5)  # slow is not down
                good = response.status_code == 200
                body = response.text.strip()
            except requests.RequestException:
                good, body = False, ""
                session = requests.Session()
            now = time.monotonic()
            if good:
                if failing:
                    self.longest_gap = max(self.longest_gap, now - last_ok)
                failing = False
                last_ok = now
                self.ok += 1
                if not self.bodies or self.bodies[-1] != body:
                    self.bodies.append(body)
                    self.seen.append((now, body))
            else:
                failing = True
                self.failed += 1
            time.sleep(self.interval)
        if failing:
            self.longest_gap = max(self.longest_gap, time.monotonic() - last_ok)
