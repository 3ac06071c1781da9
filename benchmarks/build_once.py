"""What "built once" costs and saves: `docker-cd build --push` of a commit, first (a build made
reproducible: every time clamped to the commit's), again in another pipeline of the commit (the
image reused: tags added registry-side, nothing built), and rebuilt into a repository that lacks
it (the engine's builder cache helps; same digest expected; the tests rebuild without any
cache); next to a plain `docker build` + `docker push` of the same context, measured in the
same run.

    python benchmarks/build_once.py [--filler-mb 64]

Prints figures and ratios; asserts nothing. Needs the Docker engine and docker-registry.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from docker_cd_local.registry import start_registry
from steps.cli import run
from tests.support import BUSYBOX, read_dotenv

COMMITTED = "2024-05-01T12:00:00+00:00"


def app(root: Path, filler_mb: int) -> Path:
    """A context in git: busybox, a filler layer of random data, a RUN writing files."""
    (root / "www").mkdir(parents=True)
    shutil.copy(BUSYBOX, root / "busybox")
    (root / "filler.bin").write_bytes(os.urandom(filler_mb * 1024 * 1024))
    (root / "www" / "index.html").write_text(f"{uuid.uuid4().hex}\n")
    (root / "Dockerfile").write_text(
        "FROM scratch\nCOPY www /www\nCOPY busybox /bin/busybox\n"
        'RUN ["/bin/busybox", "--install", "-s", "/bin"]\nCOPY filler.bin /data/filler.bin\n'
        "RUN mkdir -p /var/app && date > /var/app/built\n")
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@example.com",
           "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@example.com",
           "GIT_AUTHOR_DATE": COMMITTED, "GIT_COMMITTER_DATE": COMMITTED}
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "c"]):
        subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True)
    return root


def build(context: Path, repository: str, commit: str, ref: str,
          out: Path) -> tuple[float, dict[str, str]]:
    started = time.perf_counter()
    code = run(["build", "--push", "--context", str(context), "--dotenv", str(out),
                "--label", "bench=build-once"],
               {"CI_REGISTRY_IMAGE": repository, "CI_COMMIT_SHA": commit,
                "CI_COMMIT_REF_SLUG": ref, "CI_COMMIT_TIMESTAMP": COMMITTED})
    elapsed = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"docker-cd build exited {code}")
    return elapsed, read_dotenv(out)


def plain(context: Path, repository: str) -> float:
    started = time.perf_counter()
    subprocess.run(["docker", "build", "-q", "-t", f"{repository}:plain", str(context)],
                   check=True, capture_output=True)
    subprocess.run(["docker", "push", f"{repository}:plain"], check=True, capture_output=True)
    return time.perf_counter() - started


def _remove(repositories: list[str]) -> None:
    """The images tagged in the benchmark's repositories, newest first (children before the
    parents the builder's cache made them from)."""
    import contextlib

    import docker

    client = docker.from_env()
    found = {i.id: i for r in repositories for i in client.images.list(name=r)}
    for image in sorted(found.values(), key=lambda i: i.attrs["Created"], reverse=True):
        with contextlib.suppress(docker.errors.APIError):
            client.images.remove(image.id, force=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--filler-mb", type=int, default=64)
    args = parser.parse_args()
    registry = start_registry()
    made: list[str] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            context = app(Path(tmp) / "app", args.filler_mb)
            commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=context, check=True,
                                    capture_output=True, text=True).stdout.strip()
            first_repo = f"{registry.host}/bench/app"
            other_repo = f"{registry.host}/bench/rebuilt"
            made += [first_repo, other_repo]
            plain_s = plain(context, first_repo)
            first_s, first = build(context, first_repo, commit, "main", Path(tmp) / "1.env")
            again_s, again = build(context, first_repo, commit, "v1-0-0", Path(tmp) / "2.env")
            rebuilt_s, rebuilt = build(context, other_repo, commit, "main", Path(tmp) / "3.env")
    finally:
        registry.stop()
        _remove(made)
    print(f"image of ~{args.filler_mb} MB, busybox FROM scratch, a RUN step, one registry")
    print(f"plain docker build + push:                  {plain_s:6.2f} s")
    print(f"docker-cd build --push, first (reproducible): {first_s:6.2f} s "
          f"({first_s / plain_s:.2f}x plain)")
    print(f"docker-cd build --push, same commit again:    {again_s:6.2f} s "
          f"({again_s / first_s:.3f}x first: reused, nothing built)")
    print(f"rebuilt into another repository:              {rebuilt_s:6.2f} s, same digest: "
          f"{rebuilt['CD_IMAGE_DIGEST'] == first['CD_IMAGE_DIGEST']}; "
          f"reused digest: {again['CD_IMAGE_DIGEST'] == first['CD_IMAGE_DIGEST']}")


if __name__ == "__main__":
    main()
