"""Peak memory of each step: every `docker-cd` step run once, as a pipeline runs it, against
real parts (docker_cd_local/stack.py: the local engine and registry, Trivy, the promotion service),
on examples/hello-app; the order is a release's life: build, push, tag, register, scan,
template render, deploy, verify, gate, releases, a second deploy, rollback.

Printed per step: the step process's own peak resident set (the kernel's VmHWM of the
process, read as it exits) and, beside it, the peak of its child processes (Trivy for scan).
Goal (issue 16): each step process under 80 MB.

    python3 benchmarks/step_memory.py
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from docker_cd_local.stack import Stack
from tests.support import read_dotenv

GOAL_MB = 80
# Runs a step like `python -m steps`, and writes the process's own peak RSS (VmHWM, in KB) and
# its children's (ru_maxrss) to $PEAK_FILE as it exits. Not its own ru_maxrss: that counts the
# memory of the process that started it, from before exec.
PROBE = """\
import atexit, json, os, re, resource, sys
def peak():
    status = open("/proc/self/status").read()
    with open(os.environ["PEAK_FILE"], "w") as f:
        json.dump([int(re.search(r"VmHWM:\\s+(\\d+)", status).group(1)),
                   resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss], f)
atexit.register(peak)
sys.argv = ["docker-cd", *sys.argv[1:]]
from steps.cli import main
main()
"""


def run_step(argv: list[str], env: dict[str, str], cwd: Path) -> dict:
    """Run one step; its exit code, seconds, own and children's peak RSS in MB."""
    with tempfile.NamedTemporaryFile(suffix=".json") as peak:
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-c", PROBE, *argv], cwd=cwd, text=True,
                              env={**os.environ, **env, "PEAK_FILE": peak.name},
                              capture_output=True, check=False)
        own, children = json.loads(Path(peak.name).read_text())
    return {"code": done.returncode, "seconds": time.monotonic() - started,
            "own": own / 1024, "children": children / 1024, "log": done.stderr}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="docker-cd-memory-") as tmp:
        stack = Stack.start(Path(tmp))
        try:
            repo = stack.repo
            assert repo is not None and stack.service is not None
            sha = repo.head
            env = {**stack.variables(), "CD_SERVICE_TOKEN": stack.service.tokens["ci"],
                   "CI_COMMIT_SHA": sha, "CI_COMMIT_REF_NAME": "main",
                   "CI_COMMIT_REF_SLUG": "main", "CI_PIPELINE_ID": "1",
                   "CI_PROJECT_PATH_SLUG": "demo-hello-app", "CD_TEMPLATE_DIR": "deploy"}
            plan = [
                ("build", ["build", "--dotenv", "build.env"]),
                ("push", ["push", "--dotenv", "build.env"]),
                ("tag", ["tag", "--scheme", "sha"]),
                ("register", ["register"]),
                ("scan", ["scan", "--gitlab-report", "report.json", "--sbom", "sbom.json"]),
                ("template render", ["template", "render", "--environment", "test"]),
                ("deploy", ["deploy", "--environment", "test"]),
                ("verify", ["verify", "--environment", "test"]),
                ("gate", ["gate", "--environment", "staging"]),
                ("releases", ["releases", "--environment", "test"]),
                ("deploy (replacing)", ["deploy", "--environment", "test"]),
                ("rollback", ["rollback", "--environment", "test"]),
            ]
            for name, argv in plan:
                if name == "deploy (replacing)":  # another release to roll back from
                    (repo.path / "deploy" / "config" / "message.txt").write_text("again\n")
                result = run_step(argv, env, repo.path)
                if result["code"] not in (0, 1):
                    raise RuntimeError(f"{name} exited {result['code']}:\n{result['log']}")
                if (repo.path / "build.env").exists():
                    env.update(read_dotenv(repo.path / "build.env"))
                rows.append((name, result))
        finally:
            stack.stop()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"load average {load} on {os.cpu_count()} CPUs\n")
    print(f"{'step':<20}{'exit':>5}{'time (s)':>10}{'peak RSS (MB)':>15}{'children (MB)':>15}")
    for name, r in rows:
        children = f"{r['children']:.0f}" if r["children"] else "-"
        print(f"{name:<20}{r['code']:>5}{r['seconds']:>10.2f}{r['own']:>15.1f}{children:>15}")
    worst = max(rows, key=lambda row: row[1]["own"])
    ok = worst[1]["own"] < GOAL_MB
    print(f"\ngoal: each step process under {GOAL_MB} MB: {'met' if ok else 'NOT met'} "
          f"(largest: {worst[0]}, {worst[1]['own']:.1f} MB, ratio {worst[1]['own'] / GOAL_MB:.2f})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
