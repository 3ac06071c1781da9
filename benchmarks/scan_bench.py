"""How fast the scan step is: the policy on a big report, and trivy with a cold and a warm cache.

    python benchmarks/scan_bench.py [--findings 5000] [--filler-mb 64]

Prints figures and ratios; asserts nothing. Needs the Docker engine and trivy (offline).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from steps.scanning.findings import parse_trivy
from steps.scanning.policy import IgnoreRule, Policy, evaluate
from steps.scanning.report import gitlab_report, summary_table

DATA = Path(__file__).resolve().parents[1] / "tests" / "steps" / "data"


def big_report(count: int) -> dict:
    """The recorded report with its vulnerabilities repeated under new ids to `count`."""
    report = json.loads((DATA / "trivy-debian-python.json").read_text())
    base = report["Results"][0]["Vulnerabilities"]
    vulns = []
    for i in range(count):
        item = dict(base[i % len(base)])
        item["VulnerabilityID"] = f"CVE-2030-{i:05d}"
        item["PkgName"] = f"{item['PkgName']}-{i % 97}"
        vulns.append(item)
    report["Results"] = [{**report["Results"][0], "Vulnerabilities": vulns}]
    return report


def bench_policy(count: int) -> None:
    report = big_report(count)
    ignores = tuple(IgnoreRule(f"CVE-2030-{i:05d}", "accepted", date(2999, 1, 1))
                    for i in range(0, count, 10))
    started = time.perf_counter()
    scan = parse_trivy(report)
    verdict = evaluate(scan.findings, Policy("HIGH", ignores=ignores), date.today())
    summary_table(scan, verdict, "bench/app@sha256:" + "0" * 64)
    now = datetime.now(UTC)
    gitlab_report(scan, verdict, "bench/app@sha256:" + "0" * 64, now, now, "0.1.0")
    elapsed = time.perf_counter() - started
    print(f"policy: {count} findings, {len(ignores)} ignore entries: parse+evaluate+summary+"
          f"GitLab report {elapsed * 1000:.0f} ms ({count / elapsed:,.0f} findings/s)")


def bench_trivy(filler_mb: int) -> None:
    import docker

    from tests.support import ImageFactory

    factory = ImageFactory(docker.from_env(timeout=300))
    try:
        image = factory.build(filler_mb={"filler.bin": filler_mb},
                              files={"app.env": "DEBUG=false\n"},
                              dockerfile="COPY app.env /app/app.env")
        with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as out:
            argv = [sys.executable, "-m", "steps", "scan", image, "--scanners", "secret",
                    "--image-src", "docker", "--offline",
                    "--cache-dir", cache, "--sbom", f"{out}/bom.json"]
            times = []
            for _ in range(2):
                started = time.perf_counter()
                subprocess.run(argv, check=True, capture_output=True)
                times.append(time.perf_counter() - started)
        print(f"trivy secret scan + SBOM of a {filler_mb} MB image: cold cache "
              f"{times[0]:.2f} s, warm cache {times[1]:.2f} s "
              f"(warm/cold {times[1] / times[0]:.2f})")
    finally:
        factory.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--findings", type=int, default=5000)
    parser.add_argument("--filler-mb", type=int, default=64)
    args = parser.parse_args()
    bench_policy(args.findings)
    bench_trivy(args.filler_mb)


if __name__ == "__main__":
    main()
