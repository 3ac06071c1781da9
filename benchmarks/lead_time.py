"""Lead time of examples/hello-app on this machine: from a commit to verified in test, and to
verified in staging, with no human wait (staging is promoted by policy, as the service does).

Runs the real pipeline (docker_cd_local/stack.py: gitlab-ci-local, the local engine and registry,
the promotion service, the GitLab API double) twice: a cold first run (the build cache cannot
help: the benchmark's copy of the app starts its Dockerfile with a fresh LABEL) into empty
environments; then, alternately, cold-cache runs and runs after a one-line change (APP_VERSION,
where the layers before that line come from the cache), both replacing the running release.
Goals: under 60 s to test, under 90 s to staging; a run after a one-line change faster than the
first. The one-line change is also compared like for like with a cold-cache run that replaces a
running release too, since replacing a release costs more than a first deploy.

    python3 benchmarks/lead_time.py [--runs N]
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from docker_cd_local.stack import Stack

JOB = re.compile(r"PASS\s+\[\s*([0-9.]+)\s*(m?s)\]\s+(\S+)")


def job_seconds(log: str) -> dict[str, float]:
    """Each job's duration from gitlab-ci-local's summary (`PASS  [ 9.22 s] build`)."""
    return {name: float(value) / (1000 if unit == "ms" else 1)
            for value, unit, name in JOB.findall(log)}


def one_release(stack: Stack, version: str, pipelines_before: int, cold: bool = False
                ) -> tuple[float, float, dict[str, float]]:
    """Commit; seconds until the service recorded it verified in test, then in staging.

    `cold`: a fresh LABEL first in the Dockerfile, so no cached layer can be used (as on a new
    runner); otherwise only the APP_VERSION line changes.
    """
    if cold:
        dockerfile = stack.repo.path / "Dockerfile"
        text = re.sub(r"^LABEL benchmark.run=.*\n", "", dockerfile.read_text(), flags=re.M)
        dockerfile.write_text(text.replace(
            "FROM scratch\n", f"FROM scratch\nLABEL benchmark.run={uuid.uuid4().hex}\n", 1))
    committed = time.time()
    stack.push(change=version)
    log = stack.run_branch_pipeline()
    image = stack.repo.dotenv("build", "build.env")["CD_IMAGE"]
    staging = stack.wait_for_pipeline("staging", after=pipelines_before, timeout=60)
    log += stack.run_triggered(staging)
    return (stack.verified_at(image, "test") - committed,
            stack.verified_at(image, "staging") - committed, job_seconds(log))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3,
                        help="runs of each kind after the first (medians are printed)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="docker-cd-lead-time-") as tmp:
        stack = Stack.start(Path(tmp))
        try:
            runs = {"first": [one_release(stack, "1", 0, cold=True)], "cold": [], "warm": []}
            for i in range(args.runs):  # alternate, so load changes hit both kinds alike
                runs["cold"].append(one_release(stack, f"c{i}", 1 + 2 * i, cold=True))
                runs["warm"].append(one_release(stack, f"w{i}", 2 + 2 * i))
        finally:
            stack.stop()
    rows = {
        "first run (cold cache, empty environments)": runs["first"],
        "cold cache, replacing a running release": runs["cold"],
        "one-line change (warm cache, replacing)": runs["warm"],
    }
    median = {k: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v))
              for k, v in rows.items()}
    print(f"{'run (median)':<44}{'commit -> verified in test':>28}{'-> in staging':>16}")
    for name, (to_test, to_staging) in median.items():
        print(f"{name:<44}{to_test:>26.1f} s{to_staging:>14.1f} s")
    print(f"{'goal':<44}{'< 60 s':>28}{'< 90 s':>16}")
    print("\nmedian seconds per job (first / cold / one-line change):")
    for job in runs["first"][0][2]:
        figures = [statistics.median(r[2].get(job, 0) for r in v) for v in rows.values()]
        print(f"  {job:<16}" + " / ".join(f"{f:5.1f}" for f in figures))
    first, cold, warm = median.values()
    print(f"\none-line change / first run:  to test {warm[0] / first[0]:.2f}, "
          f"to staging {warm[1] / first[1]:.2f}")
    print(f"one-line change / cold cache: to test {warm[0] / cold[0]:.2f}, "
          f"to staging {warm[1] / cold[1]:.2f}   (below 1 = the build cache saves time)")
    ok = first[0] < 60 and first[1] < 90 and warm[0] < first[0] and warm[0] < cold[0]
    print("goals met" if ok else "goals NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
