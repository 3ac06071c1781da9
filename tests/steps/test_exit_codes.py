"""Every step against the same faults: one exit code and one cause per fault, whichever step meets
it (the README's table): a refused or missing credential and a missing image are the user's to
fix (2, no retry helps); a registry, engine or service that is down or failing is an outside
system that may come back (3, worth `retry: exit_codes: [3]`).

Real parts throughout: a registry that asks for a password on every request (pulls included),
the Docker engine, trivy. The promotion service's faults are played by a server that answers
every request with the status under test, or by a port nothing listens on.
"""

from __future__ import annotations

import contextlib
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from steps import cli
from tests.conftest import REGISTRY_PASSWORD, REGISTRY_USER
from tests.steps.deploy_sample import WEB_DOCKERFILE, WEB_ONLY, remove_project
from tests.steps.registry_helpers import push_image
from tests.support import BUSYBOX, Registry, free_port, start_registry

pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]

DATA = Path(__file__).parent / "data"
ZERO_DIGEST = "sha256:" + "0" * 64
TEMPLATE = WEB_ONLY + """\
x-docker-cd:
  verify:
    - name: page
      command: ["test", "-f", "/www/index.html"]
      service: web
"""


@dataclass
class Fault:
    """How a fault is made, the exit code every step must end with, and the cause it names."""

    code: int
    cause: str  # the message names it ({registry} and {engine} are filled in)
    credentials: str = "good"  # good | wrong | none
    image: str = "present"  # present | missing | unreachable
    service: str | None = None  # None | down | 503 | 401
    engine_down: bool = False


FAULTS = {
    "wrong password": Fault(2, "registry {registry} refused the credentials for user "
                               f"{REGISTRY_USER!r}", credentials="wrong"),
    "no credentials": Fault(2, "registry {registry} requires credentials and none were found",
                            credentials="none"),
    "missing image": Fault(2, "is not in registry {registry}", image="missing"),
    "registry down": Fault(3, "registry {registry}", image="unreachable"),
    "engine down": Fault(3, "the Docker engine at {engine} does not answer", engine_down=True),
    "service down": Fault(3, "promotion service", service="down"),
    "service 5xx": Fault(3, "HTTP 503", service="503"),
    "service refuses the token": Fault(2, "the promotion service refused the credential",
                                       service="401"),
}
REGISTRY_FAULTS = ("wrong password", "no credentials", "missing image", "registry down")
SERVICE_FAULTS = ("service down", "service 5xx", "service refuses the token")

# Which faults each step can meet (a step that never talks to a system cannot meet its fault).
STEPS = {
    "build": (*REGISTRY_FAULTS[:2], "registry down", "engine down"),
    "push": (*REGISTRY_FAULTS, "engine down"),
    "tag": REGISTRY_FAULTS,
    "scan": (*REGISTRY_FAULTS, *SERVICE_FAULTS),
    "deploy": (*REGISTRY_FAULTS, "engine down", *SERVICE_FAULTS),
    "rollback": (*REGISTRY_FAULTS, "engine down", *SERVICE_FAULTS),
    "verify": ("engine down", *SERVICE_FAULTS),
    "releases": ("engine down",),
    "register": SERVICE_FAULTS,
    "gate": SERVICE_FAULTS,
}
# What the fault is called where a step meets it in its own terms.
CAUSES = {("push", "missing image"): "there is no local image",
          ("build", "registry down"): "connection refused",
          ("push", "registry down"): "connection refused"}


class _FaultyService(BaseHTTPRequestHandler):
    status = 503

    def _answer(self) -> None:
        body = json.dumps({"code": self.status, "status": "error", "message": "played fault",
                           "request_id": "fault"}).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PATCH = _answer

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def faulty_service(status: int) -> Iterator[str]:
    """A server answering every request with `status`, as a failing service would; its URL."""
    handler = type("Handler", (_FaultyService,), {"status": status})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class World:
    """The registry, images, template and environments every case starts from."""

    registry: Registry
    image: str  # repository@digest in the registry, not on the engine
    local: str  # an image on the engine, for push
    context: Path  # a build context
    template: Path
    project: str
    made: list[Registry] = field(default_factory=list)

    def repository(self, fault: Fault, name: str) -> str:
        host = f"127.0.0.1:{self.down_port}" if fault.image == "unreachable" else \
            self.registry.host
        return f"{host}/faults/{name}"

    down_port: int = field(default_factory=free_port)

    def image_for(self, fault: Fault) -> str:
        repository, digest = self.image.split("@")
        if fault.image == "missing":
            return f"{repository}@{ZERO_DIGEST}"
        if fault.image == "unreachable":
            return f"127.0.0.1:{self.down_port}/{repository.split('/', 1)[1]}@{digest}"
        return self.image

    def registry_env(self, fault: Fault) -> dict[str, str]:
        if fault.credentials == "none":
            return {}
        password = "wrong-Pa55" if fault.credentials == "wrong" else REGISTRY_PASSWORD
        host = self.image_for(fault).split("/", 1)[0]
        return {"CI_REGISTRY": host, "CI_REGISTRY_USER": REGISTRY_USER,
                "CI_REGISTRY_PASSWORD": password}


@pytest.fixture(scope="module")
def world(docker, images, auth_registry, tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    label = {"exit-codes-test": uuid.uuid4().hex}
    built = images.build(dockerfile=WEB_DOCKERFILE, labels=label,
                         files={"www/index.html": "version 1\n", "www/health": "ok\n"})
    repository = f"faults/web-{uuid.uuid4().hex[:8]}"
    digest = push_image(docker, built, auth_registry, repository, "v1")
    image = f"{auth_registry.host}/{repository}@{digest}"
    context = root / "context"
    context.mkdir()
    (context / "busybox").write_bytes(BUSYBOX.read_bytes())
    (context / "Dockerfile").write_text("FROM scratch\nCOPY busybox /bin/busybox\n"
                                        f"LABEL exit-codes-test={label['exit-codes-test']}\n")
    template = root / "deploy"
    template.mkdir()
    (template / "compose.yml").write_text(TEMPLATE)
    (template / "compose.faults.yml").write_text("services: {}\n")
    world = World(auth_registry, image, built, context, template,
                  f"faults-{uuid.uuid4().hex[:8]}")
    yield world
    remove_project(docker, world.project)
    for registry in world.made:
        registry.stop()


def _untag(docker, ref: str) -> None:
    import docker.errors as errors

    with contextlib.suppress(errors.ImageNotFound):
        docker.images.remove(ref)


def _forget(docker, image: str) -> None:
    import docker.errors as errors

    with contextlib.suppress(errors.ImageNotFound):
        docker.images.remove(docker.images.get(image).id, force=True)


@pytest.fixture
def rollback_environment(docker, images, world) -> Callable[[Fault], dict[str, str]]:
    """An environment with two releases, the first one's image no longer on the engine and in a
    registry of its own, which the fault then breaks (credentials, deleted image, stopped)."""

    def make(fault: Fault) -> dict[str, str]:
        registry = start_registry(REGISTRY_USER, REGISTRY_PASSWORD)
        world.made.append(registry)
        environment = f"rb{uuid.uuid4().hex[:6]}"
        (world.template / f"compose.{environment}.yml").write_text("services: {}\n")
        built = images.build(dockerfile=WEB_DOCKERFILE, labels={"rollback-test": environment},
                             files={"www/index.html": "old\n", "www/health": "ok\n"})
        digest = push_image(docker, built, registry, "faults/old", "v1")
        old = f"{registry.host}/faults/old@{digest}"
        good = {"CI_REGISTRY": registry.host, "CI_REGISTRY_USER": REGISTRY_USER,
                "CI_REGISTRY_PASSWORD": REGISTRY_PASSWORD}
        for image, host in ((old, registry.host), (world.image, world.registry.host)):
            code = cli.run(["deploy", "--environment", environment],
                           {**_deploy_env(world), **good, "CI_REGISTRY": host, "CD_IMAGE": image})
            assert code == 0, f"setting up {environment}: deploy {image}"
        if fault.image != "present" or fault.credentials != "good":
            _forget(docker, old)
        if fault.image == "missing":  # the registry lost it, blobs and all (a cleanup)
            _delete_image(registry, "faults/old", digest)
        if fault.image == "unreachable":
            registry.stop()
        env = {**_deploy_env(world), "CD_ENVIRONMENT": environment}
        if fault.credentials == "wrong":
            env.update({**good, "CI_REGISTRY_PASSWORD": "wrong-Pa55"})
        elif fault.credentials == "good":
            env.update(good)
        env["_REGISTRY"] = registry.host
        return env

    return make


def _delete_image(registry: Registry, repository: str, digest: str) -> None:
    """Delete a manifest and the blobs it names. The engine keeps the manifests it pulled (in
    its content store), so only the missing blobs make a pull by digest fail as it would."""
    import requests

    base = f"{registry.url}/v2/{repository}"
    manifest = requests.get(f"{base}/manifests/{digest}", auth=registry.auth, timeout=10,
                            headers={"Accept": "application/vnd.docker.distribution.manifest"
                                               ".v2+json"}).json()
    for blob in (manifest["config"], *manifest["layers"]):
        requests.delete(f"{base}/blobs/{blob['digest']}", auth=registry.auth,
                        timeout=10).raise_for_status()
    requests.delete(f"{base}/manifests/{digest}", auth=registry.auth,
                    timeout=10).raise_for_status()


def _deploy_env(world: World) -> dict[str, str]:
    return {"CD_PROJECT": world.project, "CD_TEMPLATE_DIR": str(world.template),
            "CD_HEALTH_TIMEOUT": "60"}


def case(step: str, fault: Fault, world: World, tmp_path: Path,
         rollback_environment: Callable[[Fault], dict[str, str]]) -> tuple[list[str], dict]:
    """The command line and variables of `step` meeting `fault`."""
    image = world.image_for(fault)
    env: dict[str, str] = {"CD_RETRIES": "1", **world.registry_env(fault)}
    registry = image.split("/", 1)[0]
    if step == "build":
        argv = ["build", "--push", "--context", str(world.context),
                "--image-repository", world.repository(fault, "built"), "--tag", "t1"]
    elif step == "push":
        argv = ["push", "--image-repository", world.repository(fault, "pushed"), "--tag", "t1"]
    elif step == "tag":
        argv = ["tag", image, "t2"]
    elif step == "scan":
        argv = ["scan", image, "--scanners", "secret", "--image-src", "remote",
                "--offline", "--cache-dir", str(tmp_path / "trivy")]
        if fault.service:
            argv = ["scan", image, "--from-report", str(DATA / "trivy-clean.json")]
    elif step == "deploy":
        argv = ["deploy", "--environment", "faults"]
        env.update(_deploy_env(world), CD_IMAGE=image)
    elif step in ("rollback", "verify", "releases"):
        prepared = rollback_environment(fault)
        registry = prepared.pop("_REGISTRY")
        env = {**prepared, "CD_RETRIES": "1"}
        argv = [step]
    elif step == "register":
        argv = ["register", world.image, "--project", "faults/app"]
    else:  # gate
        argv = ["gate", world.image, "--environment", "staging", "--project", "faults/app"]
    return argv, {**env, "_REGISTRY": registry}


@pytest.mark.parametrize(("step", "fault_name"), [
    (step, fault) for step, faults in STEPS.items() for fault in faults])
def test_every_step_meets_every_fault_with_one_code_and_its_cause(
        step, fault_name, world, tmp_path, capsys, monkeypatch, rollback_environment, docker):
    fault = FAULTS[fault_name]
    argv, env = case(step, fault, world, tmp_path, rollback_environment)
    registry = env.pop("_REGISTRY")
    engine = f"tcp://127.0.0.1:{free_port()}"
    local = {"push": "pushed", "build": "built"}.get(step)
    with contextlib.ExitStack() as stack:
        if local:  # the tags a push or build leaves on the engine
            ref = f"{world.repository(fault, local)}:t1"
            stack.callback(lambda: _untag(docker, ref))
            if step == "push" and fault.image != "missing":
                docker.images.get(world.local).tag(ref)
        if fault.service == "down":
            env["CD_SERVICE_URL"] = f"http://127.0.0.1:{free_port()}"
        elif fault.service:
            env["CD_SERVICE_URL"] = stack.enter_context(faulty_service(int(fault.service)))
        if fault.service:
            env["CD_SERVICE_TOKEN"] = "played-token"
        if fault.engine_down:
            monkeypatch.setenv("DOCKER_HOST", engine)
        code = cli.run(argv, env)
    log = capsys.readouterr().err
    error = [line for line in log.splitlines() if line.startswith("Error: ")]
    assert error, log
    cause = CAUSES.get((step, fault_name), fault.cause).format(registry=registry, engine=engine)
    assert (code, cause.lower() in error[-1].lower()) == (fault.code, True), log
    assert REGISTRY_PASSWORD not in log
