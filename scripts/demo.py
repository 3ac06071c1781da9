"""The docker-cd demo: hello-app from a commit to production on this machine, then where each
environment serves.

It runs what a team runs: the app's `.gitlab-ci.yml` (one `include:` of the template) under
gitlab-ci-local; a local registry; the promotion service, which promotes to staging by policy
and to production after an approval (given here through its API, as QA would); GitLab's API is
played by the in-repo double (the service triggers the downstream pipelines there, and the demo
runs them). The app's containers keep running afterwards; `scripts/demo.sh --clean` removes them.
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.stack import ENVIRONMENTS, Stack  # noqa: E402
from tests.local_gitlab import PipelineFailed  # noqa: E402
from tests.support import free_port  # noqa: E402

PROJECT = "hello-app-demo"
PORTS = {"test": 18081, "staging": 18082, "production": 18083}


def _port(preferred: int) -> int:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            return free_port()


def _say(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def demo(workdir: Path, quiet: bool) -> int:
    """Run the pipelines; print the environments' URLs; 0 on success."""
    echo = not quiet
    ports = {env: _port(port) for env, port in PORTS.items()}
    started = time.monotonic()
    _say("starting a registry, the GitLab API double and the promotion service")
    stack = Stack.start(workdir, project=PROJECT, ports=ports)
    (workdir / "image-repository").write_text(stack.image_repository)  # for --clean
    try:
        stack.push()
        _say(f"pipeline of the default branch ({stack.repo.path}): build, scan, register, "
             "deploy to test, verify")
        stack.run_branch_pipeline(echo=echo)
        image = stack.repo.dotenv("build", "build.env")["CD_IMAGE"]
        _say("the promotion service promotes to staging by policy and triggers its pipeline")
        staging = stack.wait_for_pipeline("staging", after=0)
        print(f"    pipeline {staging.id}: {staging.variables}")
        stack.run_triggered(staging, echo=echo)
        _say("QA approves production through the promotion service's API")
        stack.approve(image, "production")
        production = stack.wait_for_pipeline("production", after=1)
        print(f"    pipeline {production.id}: {production.variables}")
        _say("QA plays the manual deploy-production job")
        stack.run_triggered(production, manual=("deploy-production",), echo=echo)
    except PipelineFailed as e:
        print(f"\nThe demo failed: {e}", file=sys.stderr)
        stack.stop(keep_app=True)
        return 1
    _say(f"hello-app ({image}) is delivered in {time.monotonic() - started:.0f}s:")
    for env in ENVIRONMENTS:
        print(f"    {env:<11} {stack.url(env):<45} {stack.answer(env).splitlines()[0]}")
    print(f"\nThe app keeps running; remove it with: scripts/demo.sh --clean\n"
          f"Pipeline logs: {stack.repo.path}/.gitlab-ci-local/output/")
    stack.stop(keep_app=True)
    return 0


def clean(workdir: Path) -> None:
    """Remove the demo's containers, networks, volumes and images, and its work directory."""
    from tests.support import docker_client

    marker = workdir / "image-repository"
    repository = marker.read_text().strip() if marker.exists() else None
    Stack(workdir, PROJECT, {}).stop()  # containers, networks, volumes; the work directory
    if repository:
        client = docker_client()
        for image in client.images.list(name=repository):
            client.images.remove(image.id, force=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path,
                        default=Path(tempfile.gettempdir()) / "docker-cd-demo",
                        help="where the app's repository and the service's data go")
    parser.add_argument("--quiet", action="store_true", help="do not echo the job logs")
    parser.add_argument("--clean", action="store_true",
                        help="remove the demo's containers and images, then exit")
    args = parser.parse_args()
    if args.clean:
        clean(args.workdir)
        print("demo removed")
        return 0
    clean(args.workdir)  # a previous demo's app holds the ports
    return demo(args.workdir, args.quiet)


if __name__ == "__main__":
    sys.exit(main())
