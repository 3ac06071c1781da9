"""How much service a deploy costs: poll the sample every 10 ms during a good update, a failed
update and a rollback, on each target, and print the longest interruption and failed requests.

Goals (issue 6): a failed update interrupts nothing; a good update interrupts < 0.5 s on the
docker target; a rollback completes in < 2 s.

    python benchmarks/deploy.py [--rounds 3] [--targets docker,swarm]

Steps run as `python -m steps ...` subprocesses, as a CI job runs them (interpreter start
included in the times). Everything created is labelled with a unique project and removed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.steps.deploy_sample import Poller, build_sample, remove_project
from tests.steps.swarm_support import one_node_swarm, remove_swarm_project
from tests.support import ImageFactory, docker_client

# Swarm publishes in host mode and cannot bind one address (see docs/deploy.md).
SWARM_OVERLAY = """\
services:
  web:
    ports: ["${WEB_PORT:?set WEB_PORT}:8080"]
"""
GOAL_GOOD_UPDATE = 0.5
GOAL_ROLLBACK = 2.0


def run_step(argv: list[str], env: dict[str, str]) -> tuple[int, float, str]:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "steps", *argv], env={**os.environ, **env},
                          capture_output=True, text=True, check=False)
    return done.returncode, time.monotonic() - started, done.stderr


def first_answer(poll: Poller, body: str, since: float) -> float | None:
    """Seconds from `since` until the poller first saw `body`."""
    return next((t - since for t, b in poll.seen if b == body), None)


def scenario(target: str, rounds: int, images: ImageFactory, client) -> dict[str, list]:
    root = Path(tempfile.mkdtemp(prefix="docker-cd-bench-")) / "deploy"
    sample = build_sample(images, root, environments=("bench",))
    if target == "swarm":
        (root / "compose.bench.yml").write_text(SWARM_OVERLAY)
    results: dict[str, list] = {"good": [], "failed": [], "rollback": []}
    try:
        env = {**sample.env("bench", "v1"), "CD_DEPLOY_TARGET": target}
        code, _, log = run_step(["deploy", "--environment", "bench"], env)
        if code != 0:
            raise RuntimeError(f"first deploy on {target} failed:\n{log}")
        current = "v1"
        for _ in range(rounds):
            new = "v2" if current == "v1" else "v1"
            for kind, image in (("good", new), ("failed", "bad")):
                with Poller(sample.url("bench")) as poll:
                    code, seconds, log = run_step(["deploy", "--environment", "bench"],
                                                  {**env, "CD_IMAGE": sample.images[image]})
                expected = 0 if kind == "good" else 1
                if code != expected:
                    raise RuntimeError(f"{kind} update on {target} exited {code}:\n{log}")
                results[kind].append((poll.longest_gap, poll.failed, seconds))
            current = new
            with Poller(sample.url("bench")) as poll:
                started = time.monotonic()
                code, seconds, log = run_step(["rollback", "--environment", "bench"], env)
                back = "v2" if current == "v1" else "v1"
            if code != 0:
                raise RuntimeError(f"rollback on {target} exited {code}:\n{log}")
            answered = first_answer(poll, f"version {back[1:]}", started)
            results["rollback"].append((poll.longest_gap, poll.failed, seconds, answered))
            current = back
    finally:
        if target == "swarm":
            remove_swarm_project(client, sample.project)
        remove_project(client, sample.project)
    return results


def report(target: str, results: dict[str, list]) -> None:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\n== {target} target ({len(results['good'])} rounds; polling every 10 ms; "
          f"load average {load} on {os.cpu_count()} CPUs)")
    print(f"{'scenario':<16}{'longest gap (s)':>18}{'failed requests':>17}{'step time (s)':>15}"
          f"{'old version back (s)':>22}")
    for kind in ("good", "failed", "rollback"):
        rows = results[kind]
        gaps = [r[0] for r in rows]
        failed = [r[1] for r in rows]
        times = [r[2] for r in rows]
        back = [r[3] for r in rows if len(r) > 3 and r[3] is not None]
        label = {"good": "good update", "failed": "failed update", "rollback": "rollback"}[kind]
        print(f"{label:<16}{max(gaps):>12.3f} max {statistics.median(gaps):.3f} med"
              f"{max(failed):>7} max{statistics.median(times):>11.2f} med"
              + (f"{statistics.median(back):>15.2f} med" if back else ""))
    good = max(r[0] for r in results["good"])
    failed = max(r[1] for r in results["failed"])
    rollback = statistics.median(r[2] for r in results["rollback"])
    print(f"goals: failed update interrupts nothing: {'met' if failed == 0 else 'NOT met'} "
          f"({failed} failed requests at most)")
    if target == "docker":
        print(f"       good update interruption < {GOAL_GOOD_UPDATE} s: "
              f"{'met' if good < GOAL_GOOD_UPDATE else 'NOT met'} ({good:.3f} s at most, "
              f"ratio {good / GOAL_GOOD_UPDATE:.2f} of the goal)")
    print(f"       rollback < {GOAL_ROLLBACK} s: {'met' if rollback < GOAL_ROLLBACK else 'NOT met'}"
          f" ({rollback:.2f} s median step time, ratio {rollback / GOAL_ROLLBACK:.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--targets", default="docker,swarm")
    args = parser.parse_args()
    client = docker_client()
    images = ImageFactory(client)
    try:
        for target in args.targets.split(","):
            try:
                # a one-node swarm for the swarm target, left again if made here
                with one_node_swarm(client) if target == "swarm" else nullcontext():
                    report(target, scenario(target, args.rounds, images, client))
            except RuntimeError as e:
                print(f"\n== {target} target: could not be measured: {e}")
    finally:
        images.cleanup()


if __name__ == "__main__":
    main()
