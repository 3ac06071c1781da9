"""How much service a deploy costs: poll the sample every 10 ms during a good update, a failed
update and a rollback, in each layout, and print the longest interruption, the failed requests,
and when the previous release answers again after a rollback starts.

Goals (issues 6 and 16): a failed update interrupts nothing; a good update interrupts < 0.5 s;
after a rollback starts, the previous release answers within 2 s.

Layouts (the same sample application, tests/steps/deploy_sample.py):
    docker       the docker target; web's fixed host port owned by a network holder container
    swarm        one-node swarm, web publishes its port in host mode (stop-first: the port has
                 one owner, so each update has a gap)
    swarm-proxy  one-node swarm, a proxy service (busybox nc, standing in for nginx or Traefik)
                 owns the port and forwards to `web` by DNS; web publishes none, so it updates
                 start-first (the swarm target's default for a service without a host port)

    python benchmarks/deploy.py [--rounds 3] [--layouts docker,swarm,swarm-proxy]

Steps run as `python -m steps ...` subprocesses, as a CI job runs them (interpreter start
included in the times). The rollback's timeline comes from the engine's events: when the old
web container was signalled and exited, when the new one started and was healthy, and when
the poller first got the previous version, in seconds from the step's start. In the swarm
layouts a floor follows: swarm's own `docker service rollback` typed by hand after a good update,
timed the same way, so the figures split into the engine's share and docker-cd's. Everything
created is labelled with a unique project and removed.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import nullcontext
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.steps.deploy_sample import Poller, build_sample, remove_project
from tests.steps.swarm_support import PROXY_OVERLAY, one_node_swarm, remove_swarm_project
from tests.support import ImageFactory, docker_client

# Swarm publishes in host mode and cannot bind one address (see docs/deploy.md).
SWARM_HOST_PORT = """\
services:
  web:
    ports: ["${WEB_PORT:?set WEB_PORT}:8080"]
"""
LAYOUTS = {"docker": ("docker", None), "swarm": ("swarm", SWARM_HOST_PORT),
           "swarm-proxy": ("swarm", PROXY_OVERLAY)}
GOAL_GOOD_UPDATE = 0.5
GOAL_ROLLBACK = 2.0
PHASES = ("old signalled", "old exited", "new started", "new healthy", "old version back")


def run_step(argv: list[str], env: dict[str, str]) -> tuple[int, float, str, float]:
    """Exit code, seconds, log, and the step's own CPU seconds (which load does not swell)."""
    started, cpu = time.monotonic(), _children_cpu()
    done = subprocess.run([sys.executable, "-m", "steps", *argv], env={**os.environ, **env},
                          capture_output=True, text=True, check=False)
    return done.returncode, time.monotonic() - started, done.stderr, _children_cpu() - cpu


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class WebEvents:
    """The engine's events about the project's web containers from now on."""

    def __init__(self, client, project: str, target: str) -> None:
        # web's own containers: not the canary of the swarm target's last failed update, which
        # swarm is still taking down
        mine = ("io.docker-cd.role=service" if target == "docker"
                else f"com.docker.swarm.service.name={project}-bench_web")
        self.stream = client.events(decode=True, filters={
            "type": "container", "label": [f"io.docker-cd.project={project}",
                                           "io.docker-cd.service=web", mine]})
        self.seen: list[tuple[float, str, str]] = []  # (epoch seconds, action, container id)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for event in self.stream:
                self.seen.append((event["timeNano"] / 1e9, event["Action"], event["id"]))
        except Exception:  # the stream was closed
            return

    def close(self) -> None:
        self.stream.close()

    def phases(self, since: float) -> dict[str, float]:
        """Seconds from `since` (epoch) to each phase of a handover (containers created since
        are new, the others old)."""
        new = {cid for _, action, cid in self.seen if action == "create"}
        out = {}
        for phase, action, is_new in (("old signalled", "kill", False),
                                      ("old exited", "die", False),
                                      ("new started", "start", True),
                                      ("new healthy", "health_status: healthy", True)):
            times = [t for t, a, cid in self.seen if a == action and (cid in new) == is_new]
            if times:
                out[phase] = min(times) - since
        return out


def first_answer(poll: Poller, body: str, since: float) -> float | None:
    """Seconds from `since` until the poller first saw `body`."""
    return next((t - since for t, b in poll.seen if b == body and t >= since), None)


def scenario(layout: str, rounds: int, images: ImageFactory, client) -> dict[str, list]:
    target, overlay = LAYOUTS[layout]
    root = Path(tempfile.mkdtemp(prefix="docker-cd-bench-")) / "deploy"
    sample = build_sample(images, root, environments=("bench",))
    if overlay:
        (root / "compose.bench.yml").write_text(overlay)
    results: dict[str, list] = {"good": [], "failed": [], "rollback": []}
    try:
        env = {**sample.env("bench", "v1"), "CD_DEPLOY_TARGET": target,
               "FRONT_IMAGE": images.build(tag=f"{sample.project}/front:1")}
        code, _, log, _ = run_step(["deploy", "--environment", "bench"], env)
        if code != 0:
            raise RuntimeError(f"first deploy in the {layout} layout failed:\n{log}")
        current = "v1"
        for _ in range(rounds):
            new = "v2" if current == "v1" else "v1"
            for kind, image in (("good", new), ("failed", "bad")):
                with Poller(sample.url("bench")) as poll:
                    code, seconds, log, _ = run_step(["deploy", "--environment", "bench"],
                                                     {**env, "CD_IMAGE": sample.images[image]})
                expected = 0 if kind == "good" else 1
                if code != expected:
                    raise RuntimeError(f"{kind} update in the {layout} layout exited {code}:"
                                       f"\n{log}")
                results[kind].append({"gap": poll.longest_gap, "failed": poll.failed,
                                      "step": seconds})
            current, back = new, current
            events = WebEvents(client, sample.project, target)
            try:
                with Poller(sample.url("bench")) as poll:
                    started, started_epoch = time.monotonic(), time.time()
                    code, seconds, log, cpu = run_step(["rollback", "--environment", "bench"], env)
                    time.sleep(0.5)  # the last events arrive
            finally:
                events.close()
            if code != 0:
                raise RuntimeError(f"rollback in the {layout} layout exited {code}:\n{log}")
            phases = events.phases(started_epoch)
            phases["old version back"] = first_answer(poll, f"version {back[1:]}", started)
            results["rollback"].append({"gap": poll.longest_gap, "failed": poll.failed,
                                        "step": seconds, "cpu": cpu, **phases})
            current = back
        if target == "swarm":
            results["floor"] = bare_rollbacks(client, sample, env, current, rounds)
    finally:
        if target == "swarm":
            remove_swarm_project(client, sample.project)
        remove_project(client, sample.project)
    return results


def bare_rollbacks(client, sample, env: dict[str, str], current: str,
                   rounds: int) -> list[dict]:
    """The floor: swarm's own rollback typed by hand (`docker service rollback --detach web`
    after a good update by the step), timed like the step's: no interpreter, no records, no
    checks, only the engine's work."""
    service = f"{sample.project}-bench_web"
    rows = []
    for _ in range(rounds):
        new = "v2" if current == "v1" else "v1"
        code, _, log, _ = run_step(["deploy", "--environment", "bench"],
                                   {**env, "CD_IMAGE": sample.images[new]})
        if code != 0:
            raise RuntimeError(f"good update before a bare rollback exited {code}:\n{log}")
        events = WebEvents(client, sample.project, "swarm")
        try:
            with Poller(sample.url("bench")) as poll:
                started, started_epoch = time.monotonic(), time.time()
                subprocess.run(["docker", "service", "rollback", "--detach", "--quiet", service],
                               check=True, capture_output=True)
                while (first_answer(poll, f"version {current[1:]}", started) is None
                       and time.monotonic() - started < 60):
                    time.sleep(0.05)
                time.sleep(0.5)  # the last events arrive
        finally:
            events.close()
        phases = events.phases(started_epoch)
        phases["old version back"] = first_answer(poll, f"version {current[1:]}", started)
        rows.append({"gap": poll.longest_gap, "failed": poll.failed, **phases})
        # the engine finishes the rollback (its monitor period) before the next round
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (client.api.inspect_service(service).get(
                "UpdateStatus") or {}).get("State") == "rollback_started":
            time.sleep(0.2)
    return rows


def _median(rows: list[dict], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(values) if values else None


def report(layout: str, results: dict[str, list]) -> None:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\n== {layout} layout ({len(results['good'])} rounds; polling every 10 ms; "
          f"load average {load} on {os.cpu_count()} CPUs)")
    print(f"{'scenario':<16}{'longest gap (s)':>24}{'failed requests':>17}{'step time (s)':>16}")
    for kind, label in (("good", "good update"), ("failed", "failed update"),
                        ("rollback", "rollback")):
        rows = results[kind]
        gaps = [r["gap"] for r in rows]
        print(f"{label:<16}{max(gaps):>10.3f} max {statistics.median(gaps):.3f} med"
              f"{max(r['failed'] for r in rows):>13} max{_median(rows, 'step'):>12.2f} med")
    rollbacks = results["rollback"]
    timeline = ", ".join(f"{phase} {value:.2f}" for phase in PHASES
                         if (value := _median(rollbacks, phase)) is not None)
    print(f"rollback timeline (median s from the step's start): {timeline}; the step's CPU "
          f"{_median(rollbacks, 'cpu'):.2f} s")
    good = max(r["gap"] for r in results["good"])
    failed = max(r["failed"] for r in results["failed"])
    back = [r["old version back"] for r in rollbacks]
    worst = max(b if b is not None else float("inf") for b in back)
    back_median = _median(rollbacks, "old version back") or float("inf")
    print(f"goals: failed update interrupts nothing: {'met' if failed == 0 else 'NOT met'} "
          f"({failed} failed requests at most)")
    print(f"       good update interruption < {GOAL_GOOD_UPDATE} s: "
          f"{'met' if good < GOAL_GOOD_UPDATE else 'NOT met'} ({good:.3f} s at most, "
          f"ratio {good / GOAL_GOOD_UPDATE:.2f} of the goal)")
    print(f"       previous release answers < {GOAL_ROLLBACK} s after the rollback starts: "
          f"{'met' if worst < GOAL_ROLLBACK else 'NOT met'} ({back_median:.2f} s median, "
          f"{worst:.2f} s at most, ratio {back_median / GOAL_ROLLBACK:.2f} of the goal)")
    if floor := results.get("floor"):
        timeline = ", ".join(f"{phase} {value:.2f}" for phase in PHASES
                             if (value := _median(floor, phase)) is not None)
        bare = _median(floor, "old version back") or float("inf")
        print(f"floor: `docker service rollback` by hand (median s from its start): {timeline}; "
              f"longest gap {max(r['gap'] for r in floor):.3f} s")
        print(f"       previous release answers: docker-cd {back_median:.2f} s, by hand "
              f"{bare:.2f} s (ratio {back_median / bare:.2f}; docker-cd's own share "
              f"{back_median - bare:.2f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3,
                        help="good update, failed update and rollback rounds per layout")
    parser.add_argument("--layouts", default=",".join(LAYOUTS),
                        help=f"comma list of {', '.join(LAYOUTS)}")
    args = parser.parse_args()
    layouts = args.layouts.split(",")
    if unknown := [name for name in layouts if name not in LAYOUTS]:
        parser.error(f"unknown layout(s) {', '.join(unknown)}; choose from {', '.join(LAYOUTS)}")
    client = docker_client()
    images = ImageFactory(client)
    try:
        for layout in layouts:
            swarm = LAYOUTS[layout][0] == "swarm"
            try:
                # a one-node swarm for the swarm layouts, left again if made here
                with one_node_swarm(client) if swarm else nullcontext():
                    report(layout, scenario(layout, args.rounds, images, client))
            except RuntimeError as e:
                print(f"\n== {layout} layout: could not be measured: {e}")
    finally:
        images.cleanup()


if __name__ == "__main__":
    main()
