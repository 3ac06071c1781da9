"""Lead time of examples/hello-app on this machine: from a commit to verified in test, and to
verified in staging, with no human wait (staging is promoted by policy, as the service does);
and, in the same gitlab-ci-local session, the same commit through a bare pipeline a team might
write by hand (benchmarks/bare-pipeline.gitlab-ci.yml: docker build, docker push, docker run,
curl until it answers), the floor docker-cd's lead time is compared with.

Runs the real pipeline (docker_cd_local/stack.py: gitlab-ci-local, the local engine and
registry, the promotion service, the GitLab API double): a cold first run (the build cache
cannot help: the benchmark's copy of the app starts its Dockerfile with a fresh LABEL) into empty
environments; then, alternately, cold-cache runs and runs after a one-line change (APP_VERSION,
where the layers before that line come from the cache), both replacing the running release.
Each docker-cd run is followed by the bare pipeline on the same change (its own copy of the
app, so neither reuses the other's layers).

Goals: under 60 s to test, under 90 s to staging; a run after a one-line change faster than the
first; docker-cd's commit -> verified in test at most 1.5x the bare pipeline's, with scanning,
registration, the gate and verification included. Each job's time is split into the runner's
start of the job (gitlab-ci-local's shell start, up to the script's first line) and the job's
own work; what remains of the lead time is the runner between jobs (parsing, artifacts).

    python3 benchmarks/lead_time.py [--runs N]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import docker.errors

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from docker_cd_local.pipelines import AppRepo
from docker_cd_local.registry import free_port
from docker_cd_local.stack import Stack
from tests.support import docker_client

BARE_PIPELINE = Path(__file__).resolve().parent / "bare-pipeline.gitlab-ci.yml"
# The jobs between a commit and verified in test.
TO_TEST = {"docker-cd": ("build", "register", "scan", "deploy-test", "verify-test"),
           "bare": ("build", "deploy-test", "verify-test")}
GOAL_RATIO = 1.5
LINE = re.compile(r"^\[\d\d:\d\d:\d\d\s+([0-9.]+)\s*(m?s)\]\s+(\S+)\s+(.*)$", re.M)


def seconds(value: str, unit: str) -> float:
    return float(value) / (1000 if unit == "ms" else 1)


def job_times(log: str) -> dict[str, tuple[float, float]]:
    """Each job's (runner start, own work) in seconds, from gitlab-ci-local's --timestamps
    lines: the script's first command is echoed as `$ ...` once the shell has started."""
    started: dict[str, float] = {}
    out = {}
    for value, unit, job, text in LINE.findall(log):
        if text.startswith("$ ") and job not in started:
            started[job] = seconds(value, unit)
        if text.startswith("finished in "):
            total = seconds(*text.removeprefix("finished in ").split())
            out[job] = (started.get(job, 0.0), total - started.get(job, 0.0))
    return out


def change(repo: Path, version: str, cold: bool) -> None:
    """The one-line change (APP_VERSION); `cold`: also a fresh LABEL first in the Dockerfile, so
    no cached layer can be used (as on a new runner)."""
    dockerfile = repo / "Dockerfile"
    text = re.sub(r"^ENV APP_VERSION=.*$", f"ENV APP_VERSION={version}", dockerfile.read_text(),
                  flags=re.M)
    if cold:
        text = re.sub(r"^LABEL benchmark.run=.*\n", "", text, flags=re.M).replace(
            "FROM scratch\n", f"FROM scratch\nLABEL benchmark.run={uuid.uuid4().hex}\n", 1)
    dockerfile.write_text(text)


def one_release(stack: Stack, version: str, pipelines_before: int, cold: bool = False) -> dict:
    """Commit; seconds until the service recorded it verified in test, then in staging."""
    assert stack.repo is not None
    change(stack.repo.path, version, cold)
    committed = time.time()
    stack.repo.commit(f"release {version}")
    log = stack.run_branch_pipeline()
    image = stack.repo.dotenv("build", "build.env")["CD_IMAGE"]
    staging = stack.wait_for_pipeline("staging", after=pipelines_before, timeout=60)
    jobs = job_times(log)
    log += stack.run_triggered(staging)
    return {"test": stack.verified_at(image, "test") - committed,
            "staging": stack.verified_at(image, "staging") - committed, "jobs": jobs}


def bare_release(repo: AppRepo, version: str, cold: bool = False) -> dict:
    """The same change through the bare pipeline: seconds until its curl got an answer."""
    change(repo.path, version, cold)
    committed = time.time()
    repo.commit(f"release {version}")
    log = repo.run(variables={"CI_PIPELINE_SOURCE": "push"})
    verified = float(re.search(r"verified-at ([0-9.]+)", log).group(1))  # type: ignore[union-attr]
    return {"test": verified - committed, "jobs": job_times(log)}


def bare_repo(stack: Stack, root: Path) -> AppRepo:
    """A second copy of the app whose pipeline is the bare one, on the same registry."""
    repo = AppRepo.create(root / "hello-bare", project_path="demo/hello-bare")
    shutil.copy(BARE_PIPELINE, repo.path / ".gitlab-ci.yml")
    repo.commit("a pipeline written by hand")
    registry = {k: v for k, v in stack.variables().items()
                if k in ("CI_REGISTRY", "CI_REGISTRY_USER", "CI_REGISTRY_PASSWORD")}
    repo.variables = {**registry, "CI_REGISTRY_IMAGE": stack.image_repository,
                      "BARE_TEST_PORT": str(free_port()),
                      "BARE_CONTAINER": f"{stack.project}-bare-test"}
    return repo


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3,
                        help="runs of each kind after the first (medians are printed)")
    args = parser.parse_args()
    kinds = ("first", "cold", "warm")
    runs: dict[str, dict[str, list[dict]]] = {k: {"docker-cd": [], "bare": []} for k in kinds}
    with tempfile.TemporaryDirectory(prefix="docker-cd-lead-time-") as tmp:
        stack = Stack.start(Path(tmp))
        bare = None
        try:
            bare = bare_repo(stack, Path(tmp))
            plan = [("first", "1", True)] + [
                run for i in range(args.runs)  # alternate, so load changes hit both kinds alike
                for run in ((("cold", f"c{i}", True)), ("warm", f"w{i}", False))]
            for n, (kind, version, cold) in enumerate(plan):
                runs[kind]["docker-cd"].append(one_release(stack, version, n, cold))
                runs[kind]["bare"].append(bare_release(bare, version, cold))
        finally:
            if bare is not None:
                with contextlib.suppress(docker.errors.NotFound):  # a run that failed early
                    docker_client().api.remove_container(bare.variables["BARE_CONTAINER"],
                                                         force=True)
            stack.stop()
    return report(runs)


def _median(rows: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def report(runs: dict[str, dict[str, list[dict]]]) -> int:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"load average {load} on {os.cpu_count()} CPUs; medians of "
          f"{len(runs['cold']['bare'])} runs (1 for the first run)\n")
    names = {"first": "first run (cold cache, empty environments)",
             "cold": "cold cache, replacing a running release",
             "warm": "one-line change (warm cache, replacing)"}
    print(f"{'run':<44}{'docker-cd -> test':>18}{'-> staging':>12}{'bare -> test':>14}"
          f"{'ratio':>8}")
    medians = {}
    for kind, name in names.items():
        cd, bare = runs[kind]["docker-cd"], runs[kind]["bare"]
        medians[kind] = (_median(cd, "test"), _median(cd, "staging"), _median(bare, "test"))
        to_test, to_staging, floor = medians[kind]
        print(f"{name:<44}{to_test:>16.1f} s{to_staging:>10.1f} s{floor:>12.1f} s"
              f"{to_test / floor:>8.2f}")
    print(f"{'goal':<44}{'< 60 s':>18}{'< 90 s':>12}{'':>14}{f'<= {GOAL_RATIO}':>8}")
    for pipeline in ("docker-cd", "bare"):
        print(f"\n{pipeline}: median seconds per job, runner start + own work "
              "(first / cold / one-line change)")
        for job in TO_TEST[pipeline]:
            cells = []
            for kind in names:
                rows = [r["jobs"][job] for r in runs[kind][pipeline] if job in r["jobs"]]
                cells.append(f"{statistics.median(r[0] for r in rows):4.1f} + "
                             f"{statistics.median(r[1] for r in rows):4.1f}")
            print(f"  {job:<14}" + "  /  ".join(cells))
        between = [statistics.median(
            r["test"] - sum(sum(r["jobs"].get(j, (0, 0))) for j in TO_TEST[pipeline])
            for r in runs[kind][pipeline]) for kind in names]
        print(f"  {'runner between jobs':<14}" + "  /  ".join(f"{b:11.1f}" for b in between))
    (first, *_), (cold, *_), (warm, *_) = medians.values()
    ratios = [to_test / floor for to_test, _, floor in medians.values()]
    print(f"\none-line change / first run: to test {warm / first:.2f}; "
          f"one-line change / cold cache: to test {warm / cold:.2f} (below 1: the cache helps)")
    ok = (medians["first"][0] < 60 and medians["first"][1] < 90 and warm < first and warm < cold
          and max(ratios) <= GOAL_RATIO)
    print("goals met" if ok else "goals NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
