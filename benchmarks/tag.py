"""How long adding a tag takes, by image size, within a repository and into another one.

    python benchmarks/tag.py [--runs 5] [--sizes 1,100,500]

Against a local Docker Distribution registry and the local engine, for images of about 1,
100 and 500 MB (several layers), it times:

- `docker-cd tag` as the CLI process a CI job runs (the console script next to this Python);
- `docker pull` + `docker tag` + `docker push` with a cold local cache (images removed first);
- `skopeo copy` with an empty blob-info cache, as on a fresh runner;
- the floor: the manifest GET + PUT (+ blob mounts) issued directly from Python, in-process.

It prints medians and ratios, the HTTP round trips of a same-repository retag by the CLI, and
the CLI's start-up (`docker-cd tag --help`). Goals: `docker-cd tag` flat across sizes; >= 20x
faster than pull/tag/push and >= 10x faster than fresh-runner skopeo on the 500 MB
cross-repository promotion; same-repository retag in <= 3 round trips and < 100 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import itertools
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support import ImageFactory, docker_client, start_registry

ACCEPT = ", ".join([
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
])
counter = itertools.count()


def layers_for(size_mb: int) -> dict[str, int]:
    """Several layers adding up to about `size_mb` (busybox itself is about 1 MB)."""
    if size_mb <= 1:
        return {}
    count = 5 if size_mb >= 100 else 2
    return {f"layer{i}": size_mb // count for i in range(count)}


CPU: list[float] = []  # user+sys seconds of each timed child process (load-independent)


def timed(fn) -> float:
    """Wall time of fn(); the CPU time its child processes used is appended to CPU."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return elapsed


# as an installed package runs: with its bytecode cached (pip compiles it at install time)
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def run(argv: list[str], **kwargs) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, env=ENV, **kwargs)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): "
                           f"{done.stderr.strip()[-500:]}")


def docker_cd() -> str:
    """The installed console script beside this interpreter (not a version manager's shim)."""
    script = Path(sys.executable).parent / "docker-cd"
    return str(script) if script.exists() else shutil.which("docker-cd") or "docker-cd"


def floor(host: str, repo: str, tag: str, target_repo: str, new_tag: str) -> None:
    """The least a retag can do: GET the manifest, (mount its blobs), PUT it."""
    conn = http.client.HTTPConnection(host)
    conn.request("GET", f"/v2/{repo}/manifests/{tag}", headers={"Accept": ACCEPT})
    response = conn.getresponse()
    body = response.read()
    media_type = response.headers["Content-Type"]
    if target_repo != repo:
        manifest = json.loads(body)
        for blob in [manifest["config"], *manifest["layers"]]:
            conn.request("POST", f"/v2/{target_repo}/blobs/uploads/?mount={blob['digest']}"
                                 f"&from={repo}")
            mounted = conn.getresponse()
            mounted.read()
            assert mounted.status == 201, mounted.status
    conn.request("PUT", f"/v2/{target_repo}/manifests/{new_tag}", body=body,
                 headers={"Content-Type": media_type})
    put = conn.getresponse()
    put.read()
    assert put.status == 201, put.status
    conn.close()


def count_round_trips(source: str, new_tag: str) -> int:
    """HTTP requests the CLI's code path sends for a same-repository retag."""
    from steps.cli import run as cli_run

    calls = []
    original = http.client.HTTPConnection.request

    def counting(self, method, url, *args, **kwargs):
        calls.append(f"{method} {url}")
        return original(self, method, url, *args, **kwargs)

    http.client.HTTPConnection.request = counting
    stdout, stderr = sys.stdout, sys.stderr
    try:
        code = cli_run(["tag", source, new_tag], {})
    finally:
        http.client.HTTPConnection.request = original
        sys.stdout, sys.stderr = stdout, stderr
    assert code == 0
    print("  same-repository retag by the CLI: " + "; ".join(calls))
    return len(calls)


class Skopeo:
    """skopeo as an unprivileged user with a fresh (empty) blob-info cache each run."""

    def __init__(self) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="bench-skopeo-"))
        shutil.chown(self.home, "nobody")

    def copy(self, source: str, target: str) -> None:
        data = self.home / f"data-{next(counter)}"  # a new XDG_DATA_HOME: no blob-info cache
        run(["runuser", "-u", "nobody", "--", "env", f"HOME={self.home}",
             f"XDG_DATA_HOME={data}", f"XDG_RUNTIME_DIR={self.home}", "skopeo", "copy",
             "--src-tls-verify=false", "--dest-tls-verify=false",
             f"docker://{source}", f"docker://{target}"])

    def close(self) -> None:
        shutil.rmtree(self.home, ignore_errors=True)


def pull_tag_push(source: str, target: str) -> None:
    """What a job without registry-side tagging does, on a runner with no image cached."""
    run(["docker", "pull", "-q", source])
    run(["docker", "tag", source, target])
    run(["docker", "push", "-q", target])


def uncache(docker, *refs: str) -> None:
    for ref in refs:
        with contextlib.suppress(Exception):  # not there is what we want
            docker.images.remove(ref, force=True)


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="runs of the fast methods")
    parser.add_argument("--slow-runs", type=int, default=3,
                        help="runs of pull/tag/push and skopeo")
    parser.add_argument("--sizes", default="1,100,500", help="image sizes in MB")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    docker = docker_client()
    registry = start_registry()
    images = ImageFactory(docker)
    skopeo = Skopeo()
    host = registry.host
    cli = docker_cd()
    started = time.perf_counter()
    results: dict[tuple[int, str], dict[str, float]] = {}
    try:
        print(f"registry {host}; CLI {cli}; {args.runs} runs (slow methods: {args.slow_runs})")
        print(f"load average at start: {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)")
        run([cli, "tag", "--help"])  # warm-up: writes the bytecode cache
        CPU.clear()
        bare = [timed(partial(run, [sys.executable, "-c", "pass"])) for _ in range(args.runs * 2)]
        print(f"`python -c pass` (any Python CLI's floor): median {median_ms(bare):.0f} ms wall, "
              f"{median_ms(CPU):.0f} ms CPU")
        CPU.clear()
        help_times = [timed(partial(run, [cli, "tag", "--help"])) for _ in range(args.runs * 2)]
        print(f"`docker-cd tag --help` start-up: median {median_ms(help_times):.0f} ms wall, "
              f"{median_ms(CPU):.0f} ms CPU")
        for size in sizes:
            local = images.build(filler_mb=layers_for(size))
            repo = f"bench/img{size}"
            source = f"{host}/{repo}:src"
            docker.images.get(local).tag(f"{host}/{repo}", "src")
            run(["docker", "push", "-q", source])
            uncache(docker, source, local)  # cold engine from here on
            images.built.remove(local)
            actual = sum(layer["size"] for layer in json.loads(subprocess.run(
                ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{source}"],
                capture_output=True, text=True, check=True).stdout)["layers"]) / 1e6
            print(f"\n{size} MB image ({actual:.0f} MB in layers)")
            if size == sizes[0]:
                trips = count_round_trips(source, f"count-{next(counter)}")
                print(f"  HTTP round trips: {trips}")
            for mode in ("same-repo", "cross-repo"):
                def target_ref(i: int, mode=mode, repo=repo, size=size) -> tuple[str, str]:
                    if mode == "same-repo":
                        return repo, f"t{i}"
                    return f"bench/promoted{size}-{i}", "prod"

                times: dict[str, list[float]] = {k: [] for k in (
                    "docker-cd", "pull+tag+push", "skopeo", "floor")}
                cli_cpu = []
                for _ in range(args.runs):
                    target_repo, tag = target_ref(next(counter))
                    times["docker-cd"].append(timed(partial(
                        run, [cli, "tag", source, f"{host}/{target_repo}:{tag}"])))
                    cli_cpu.append(CPU[-1])
                    target_repo, tag = target_ref(next(counter))
                    times["floor"].append(timed(partial(floor, host, repo, "src", target_repo,
                                                        tag)))
                for _ in range(args.slow_runs):
                    target_repo, tag = target_ref(next(counter))
                    target = f"{host}/{target_repo}:{tag}"
                    times["pull+tag+push"].append(timed(partial(pull_tag_push, source, target)))
                    uncache(docker, target, source)
                    target_repo, tag = target_ref(next(counter))
                    target = f"{host}/{target_repo}:{tag}"
                    times["skopeo"].append(timed(partial(skopeo.copy, source, target)))
                medians = {k: median_ms(v) for k, v in times.items()}
                results[(size, mode)] = medians
                print(f"  {mode:10s} " + "  ".join(f"{k} {v:8.1f} ms"
                                                    for k, v in medians.items())
                      + f"  (docker-cd CPU {median_ms(cli_cpu):.0f} ms)")
        print("\nSummary (medians, ms; ratios are <method> / docker-cd)")
        print(f"{'size':>6} {'mode':10} {'docker-cd':>10} {'floor':>8} {'pull+tag+push':>14} "
              f"{'skopeo':>9} {'p/t/p x':>8} {'skopeo x':>9}")
        for (size, mode), m in results.items():
            print(f"{size:>4}MB {mode:10} {m['docker-cd']:>10.1f} {m['floor']:>8.1f} "
                  f"{m['pull+tag+push']:>14.1f} {m['skopeo']:>9.1f} "
                  f"{m['pull+tag+push'] / m['docker-cd']:>8.1f} "
                  f"{m['skopeo'] / m['docker-cd']:>9.1f}")
        for mode in ("same-repo", "cross-repo"):
            cd = [results[(s, mode)]["docker-cd"] for s in sizes]
            print(f"docker-cd {mode}: largest/smallest image time ratio "
                  f"{max(cd) / min(cd):.2f} (flat is 1)")
        print(f"total benchmark time {time.perf_counter() - started:.0f} s; load average at "
              f"end {os.getloadavg()[0]:.1f}")
    finally:
        skopeo.close()
        images.cleanup()
        registry.stop()


if __name__ == "__main__":
    main()
