"""The docker-cd demo: an application from a commit to production on this machine, then where
each environment runs it.

    scripts/demo.sh                          examples/hello-app
    scripts/demo.sh --app examples/shop      the example of several images
    scripts/demo.sh --app PATH [--variable KEY=VALUE ...]    your own application
    scripts/demo.sh --clean                  remove what the last demo left running

It runs what a team runs: the application's `.gitlab-ci.yml` (its `include:` of the template,
pointed at this checkout's copy; a directory without one gets just the include) under
gitlab-ci-local; a local registry that wants a password, as GitLab's does; the promotion
service, which promotes to staging by policy and to production after an approval (given here
through its API, as QA would); GitLab's API played by the GitLab API double (the service
triggers the downstream pipelines there, and the demo runs them). An application directory
needs a Dockerfile (or a `.gitlab-ci.yml` whose `images` input names the images to build) and
a deployment template (`deploy/compose.yml`, with `${CD_IMAGE}` as its image, or
`${CD_IMAGE_<NAME>}` per built service, and a `compose.<environment>.yml` overlay per
environment); the third-party images it runs from `vendor/<name>/` are pushed to the registry
first. `--variable` gives the variables its template reads (ports, say), as CI/CD variables
would. The application keeps running afterwards; `--clean` removes it.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import tempfile
import time
from pathlib import Path

from docker_cd_local.pipelines import PipelineFailed
from docker_cd_local.registry import free_port
from docker_cd_local.stack import ENVIRONMENTS, EXAMPLE_PAGES, Stack, remove_images
from steps.targets import slug

PORTS = {"test": 18081, "staging": 18082, "production": 18083}
STATE = "demo.json"  # in the work directory: what --clean removes


def _port(preferred: int) -> int:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            return free_port()


def _say(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def check_app(app: Path) -> str | None:
    """What keeps `app` from going through the pipeline, or None."""
    if not app.is_dir():
        return f"--app {app}: no such directory"
    missing = [name for name in ("Dockerfile", "deploy/compose.yml") if not (app / name).is_file()
               and not (name == "Dockerfile" and (app / ".gitlab-ci.yml").is_file())]
    if missing:
        return (f"--app {app}: no {' and no '.join(missing)}; the pipeline builds the Dockerfile "
                "and deploys deploy/compose.yml (plus deploy/compose.<environment>.yml)")
    return None


def demo(workdir: Path, app: Path | None, variables: dict[str, str], quiet: bool) -> int:
    """Run the pipelines; print where each environment runs; 0 on success."""
    echo = not quiet
    name = slug(app.name) if app else "hello-app"
    project = f"{name}-demo"
    ports = {env: _port(port) for env, port in PORTS.items()}
    started = time.monotonic()
    _say("starting a registry, the GitLab API double and the promotion service")
    stack = Stack.start(workdir, project=project, ports=ports, app=app or "hello-app",
                        variables=variables)
    (workdir / STATE).write_text(json.dumps({"project": project,
                                             "repository": stack.image_repository}))
    try:
        stack.push()
        _say(f"pipeline of the default branch ({stack.repo.path}): build, scan, register, "
             "deploy to test, verify")
        stack.run_branch_pipeline(echo=echo)
        _say("the promotion service promotes to staging by policy and triggers its pipeline")
        staging = stack.wait_for_pipeline("staging", after=0)
        print(f"    pipeline {staging.id}: {staging.variables}")
        stack.run_triggered(staging, echo=echo)
        _say("QA approves production through the promotion service's API")
        release = int(staging.variables["CD_RELEASE_ID"])
        stack.approve(release, "production")
        production = stack.wait_for_pipeline("production", after=1)
        print(f"    pipeline {production.id}: {production.variables}")
        _say("QA plays the manual deploy-production job")
        stack.run_triggered(production, manual=("deploy-production",), echo=echo)
    except PipelineFailed as e:
        print(f"\nThe demo failed: {e}", file=sys.stderr)
        stack.stop(keep_app=True)
        return 1
    images = {k: v for k, v in staging.variables.items() if k.startswith("CD_IMAGE")}
    _say(f"{name} (release {release}: {', '.join(images.values())}) is delivered in "
         f"{time.monotonic() - started:.0f}s:")
    for env in ENVIRONMENTS:
        print(f"    {env:<11} {_where(stack, env)}")
    print(f"\nThe application keeps running; remove it with: scripts/demo.sh --clean\n"
          f"Pipeline logs: {stack.repo.path}/.gitlab-ci-local/output/")
    stack.stop(keep_app=True)
    return 0


def _where(stack: Stack, environment: str) -> str:
    """An example's answer, else the environment's services and the ports it publishes."""
    if stack.app in EXAMPLE_PAGES:
        return f"{stack.url(environment):<45} {stack.answer(environment).splitlines()[0]}"
    from steps.images.engine import docker_client

    labels = [f"io.docker-cd.project={stack.project}", f"io.docker-cd.environment={environment}"]
    running = docker_client().containers.list(filters={"label": labels})
    services = sorted({c.labels.get("io.docker-cd.service", c.name) for c in running
                       if c.labels.get("io.docker-cd.role") == "service"})
    # a published port may sit on the service's network holder container
    ports = sorted({f"{b['HostIp'] or '0.0.0.0'}:{b['HostPort']}" for c in running
                    for bindings in (c.ports or {}).values() for b in bindings or []})
    return (f"{', '.join(services) or 'nothing running'}"
            f"{' on ' + ', '.join(ports) if ports else ''}")


def clean(workdir: Path) -> None:
    """Remove the demo's containers, networks, volumes and images, and its work directory."""
    state = workdir / STATE
    found = json.loads(state.read_text()) if state.exists() else {}
    stack = Stack(workdir, found.get("project", "hello-app-demo"), {})
    stack.stop()  # containers, networks, volumes; the work directory
    if found.get("repository"):
        from steps.images.engine import docker_client

        registry = found["repository"].split("/", 1)[0]
        remove_images(docker_client(), (found["repository"], f"{registry}/vendor"))


def _variable(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r}: give KEY=VALUE")
    return key, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--app", type=Path,
                        help="your application's directory (default: examples/hello-app)")
    parser.add_argument("--variable", type=_variable, action="append", default=[],
                        metavar="KEY=VALUE", help="a CI/CD variable for every job (repeat)")
    parser.add_argument("--workdir", type=Path,
                        default=Path(tempfile.gettempdir()) / "docker-cd-demo",
                        help="where the app's repository and the service's data go")
    parser.add_argument("--quiet", action="store_true", help="do not echo the job logs")
    parser.add_argument("--clean", action="store_true",
                        help="remove the demo's containers and images, then exit")
    args = parser.parse_args(argv)
    if args.clean:
        clean(args.workdir)
        print("demo removed")
        return 0
    app = args.app.resolve() if args.app else None
    problem = check_app(app) if app else None
    if problem:
        print(f"Error: {problem}", file=sys.stderr)
        return 2
    clean(args.workdir)  # a previous demo's app holds the ports
    return demo(args.workdir, app, dict(args.variable), args.quiet)


if __name__ == "__main__":
    sys.exit(main())
