"""`promotion-service audit verify` on a long audit log: time and peak memory as it grows.

One run on a throw-away PostgreSQL (or --database-url, an empty migrated database): the
log is seeded (benchmarks/seed_audit.py: COPY, a signed checkpoint every 100,000 entries)
to each size in turn, and at each size two processes read it: `promotion-service audit
verify` (the hash chain and every checkpoint) and the floor, a bare psycopg server-side
cursor that reads the same columns and checks nothing. Prints seconds, the process's own CPU
seconds (what a loaded machine cannot stretch), peak RSS and the ratios, with the load
average.

Goals (issue 16): 2,000,000 entries verified in under 60 s, with a peak RSS that does not
grow with the log (the same at 200,000 and 2,000,000 entries).

    python benchmarks/audit_verify.py [--sizes 200000,2000000] [--database-url URL]
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from benchmarks.postgres import postgres_url  # noqa: E402
from benchmarks.seed_audit import COLUMNS, libpq_url, seed  # noqa: E402
from promotion_service.db.schema import upgrade  # noqa: E402

FLOOR = """
import sys, psycopg
with psycopg.connect(sys.argv[1]) as conn, conn.cursor(name="floor") as cur:
    cur.itersize = 5000
    cur.execute("SELECT id, {columns} FROM audit_log ORDER BY id")
    n = sum(1 for _ in cur)
print(n)
""".format(columns=", ".join(COLUMNS))


def main() -> int:
    args = _args()
    with postgres_url(args.database_url) as url, \
            tempfile.TemporaryDirectory(prefix="audit-bench-") as work:
        return _run(args, url, Path(work))


def _run(args: argparse.Namespace, url: str, work: Path) -> int:
    upgrade(url)
    key_file, checkpoints = work / "audit.key", work / "checkpoints"
    key_file.write_text(secrets.token_urlsafe(32))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PROMOTION_")},
           "PYTHONPATH": str(ROOT), "PROMOTION_DATABASE_URL": url,
           "PROMOTION_AUDIT_CHECKPOINT_FILE": str(checkpoints),
           "PROMOTION_AUDIT_KEY_FILE": str(key_file)}
    print(f"audit verify on PostgreSQL, load average {_load()} on {os.cpu_count()} CPUs")
    print(f"{'entries':>10} {'seed s':>7} {'verify s':>9} {'CPU s':>6} {'verify MB':>10} "
          f"{'floor s':>8} {'CPU s':>6} {'floor MB':>9} {'time/floor':>11}")
    seeded, ok = 0, True
    for size in args.sizes:
        start = time.perf_counter()
        seeded, _ = seed(url, size - seeded, checkpoint_file=checkpoints,
                         key=key_file.read_bytes().strip())
        seed_seconds = time.perf_counter() - start
        verify = _measure([sys.executable, "-m", "promotion_service", "audit", "verify"], env)
        floor = _measure([sys.executable, "-c", FLOOR, libpq_url(url)], env)
        ok = ok and verify[2] == 0 and f"{size} entries" in verify[3]
        print(f"{size:>10,} {seed_seconds:>7.1f} {verify[0]:>9.1f} {verify[4]:>6.1f} "
              f"{verify[1]:>10.0f} {floor[0]:>8.1f} {floor[4]:>6.1f} {floor[1]:>9.0f} "
              f"{verify[0] / floor[0]:>11.2f}")
        if verify[2] != 0:
            print(verify[3], file=sys.stderr)
    print(f"load average after: {_load()}; goal: 2,000,000 in < 60 s, flat memory")
    return 0 if ok else 1


def _measure(command: list[str], env: dict[str, str]) -> tuple[float, float, int, str, float]:
    """(seconds, peak RSS in MB, exit status, output, CPU seconds) of one child process."""
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    output = process.stdout.read().decode()
    process.stdout.close()
    process.returncode = os.waitstatus_to_exitcode(status)
    return (elapsed, usage.ru_maxrss / 1024, process.returncode, output,
            usage.ru_utime + usage.ru_stime)


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="200000,2000000",
                        type=lambda text: sorted(int(n) for n in text.split(",")),
                        help="log sizes to verify at, ascending (default 200000,2000000)")
    parser.add_argument("--database-url",
                        help="an empty PostgreSQL database; default: a throw-away server")
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(main())
