"""Lead time of examples/hello-app on this machine: from a commit to verified in test, and to
verified in staging, with no human wait (staging is promoted by policy, as the service does).

Runs the real pipeline (tests/e2e/stack.py: gitlab-ci-local, the local engine and registry,
the promotion service, the GitLab API double) twice: a cold first run (the build cache cannot
help: the benchmark's copy of the app starts its Dockerfile with a fresh LABEL), then a run
after a one-line change (APP_VERSION), where the layers before that line come from the cache.
Goals: under 60 s to test, under 90 s to staging; the second run faster than the first.

    python3 benchmarks/lead_time.py [--runs-after-change N]
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

from tests.e2e.stack import Stack

JOB = re.compile(r"PASS\s+\[\s*([0-9.]+)\s*(m?s)\]\s+(\S+)")


def job_seconds(log: str) -> dict[str, float]:
    """Each job's duration from gitlab-ci-local's summary (`PASS  [ 9.22 s] build`)."""
    return {name: float(value) / (1000 if unit == "ms" else 1)
            for value, unit, name in JOB.findall(log)}


def one_release(stack: Stack, version: str, pipelines_before: int
                ) -> tuple[float, float, dict[str, float]]:
    """Commit; seconds until the service recorded it verified in test, then in staging."""
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
    parser.add_argument("--runs-after-change", type=int, default=1,
                        help="how many one-line-change runs to time after the cold one")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="docker-cd-lead-time-") as tmp:
        stack = Stack.start(Path(tmp))
        try:
            dockerfile = stack.repo.path / "Dockerfile"
            text = dockerfile.read_text()
            dockerfile.write_text(text.replace(
                "FROM scratch\n", f"FROM scratch\nLABEL benchmark.run={uuid.uuid4().hex}\n", 1))
            cold = one_release(stack, "1", pipelines_before=0)
            warm = [one_release(stack, str(2 + i), pipelines_before=1 + i)
                    for i in range(args.runs_after_change)]
        finally:
            stack.stop()
    warm_test = statistics.median(w[0] for w in warm)
    warm_staging = statistics.median(w[1] for w in warm)
    print(f"{'run':<28}{'commit -> verified in test':>28}{'-> verified in staging':>26}")
    print(f"{'first (cold build cache)':<28}{cold[0]:>26.1f} s{cold[1]:>24.1f} s")
    print(f"{'after a one-line change':<28}{warm_test:>26.1f} s{warm_staging:>24.1f} s"
          f"   (median of {len(warm)})")
    print(f"{'goal':<28}{'< 60 s':>28}{'< 90 s':>26}")
    print("\nseconds per job:  " + "  ".join(f"{name} {cold[2][name]:.1f} -> "
                                          f"{warm[-1][2].get(name, 0):.1f}" for name in cold[2]))
    print(f"second run / first run: to test {warm_test / cold[0]:.2f}, "
          f"to staging {warm_staging / cold[1]:.2f} (below 1 = faster)")
    ok = cold[0] < 60 and cold[1] < 90 and warm_test < cold[0]
    print("goals met" if ok else "goals NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
