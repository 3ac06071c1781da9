"""`promotion-service audit verify` on a long audit log: time and peak memory as it grows.

One run on a throw-away PostgreSQL (or --database-url): the log is seeded
(benchmarks/seed_audit.py: COPY, a signed checkpoint every 100,000 entries) to each size in
turn, and at each size these processes read it, one after the other: `promotion-service
audit verify` (the hash chain and every checkpoint), the same command from another checkout
(--before, e.g. a `git worktree` of main: the change measured in the same run), and three
floors that read the same columns and check nothing: a psycopg server-side cursor fetching
5,000 rows a round trip, the result streamed in chunks of 5,000 rows (what `audit verify`
reads through on PostgreSQL), and `COPY (...) TO STDOUT` read as raw blocks. Prints seconds,
the process's own CPU seconds (what a loaded machine cannot stretch), peak RSS and the time
against the streamed floor, with the load average.

Goals (issue 16): 2,000,000 entries verified in under 60 s, with a peak RSS that does not
grow with the log (the same at 200,000 and 2,000,000 entries).

    python benchmarks/audit_verify.py [--sizes 200000,2000000] [--before DIR]
        [--database-url URL [--checkpoint-file FILE --key-file FILE]]

A --database-url that already holds a log seeded by benchmarks/seed_audit.py (with its
checkpoint file and key) is only topped up to each size: seeding 2,000,000 entries takes
minutes on a loaded machine.
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

import psycopg

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from benchmarks.postgres import postgres_url  # noqa: E402
from benchmarks.seed_audit import COLUMNS, libpq_url, seed  # noqa: E402
from promotion_service.db.schema import upgrade  # noqa: E402

# the columns `audit verify` reads, JSON columns as their text
QUERY = "SELECT id, {columns} FROM audit_log ORDER BY id".format(columns=", ".join(
    f"{c}::text" if c in ("before", "after") else c for c in COLUMNS))
FLOORS = {
    "floor: server-side cursor": """
with psycopg.connect(url) as conn, conn.cursor(name="floor") as cur:
    cur.itersize = 5000
    cur.execute(QUERY)
    n = sum(1 for _ in cur)""",
    "floor: streamed in chunks": """
with psycopg.connect(url) as conn:
    n = sum(1 for _ in conn.cursor().stream(QUERY, size=5000))""",
    "floor: COPY TO STDOUT": """
with psycopg.connect(url) as conn, conn.cursor().copy(f"COPY ({QUERY}) TO STDOUT") as copy:
    n = sum(bytes(block).count(b"\\n") for block in copy)""",
}
STREAMED = "floor: streamed in chunks"


def main() -> int:
    args = _args()
    with postgres_url(args.database_url) as url, \
            tempfile.TemporaryDirectory(prefix="audit-bench-") as work:
        return _run(args, url, Path(work))


def _run(args: argparse.Namespace, url: str, work: Path) -> int:
    upgrade(url)
    key_file = args.key_file or work / "audit.key"
    checkpoints = args.checkpoint_file or work / "checkpoints"
    if args.key_file is None:
        key_file.write_text(secrets.token_urlsafe(32))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PROMOTION_")},
           "PYTHONPATH": str(ROOT), "PROMOTION_DATABASE_URL": url,
           "PROMOTION_AUDIT_CHECKPOINT_FILE": str(checkpoints),
           "PROMOTION_AUDIT_KEY_FILE": str(key_file)}
    commands = {"verify": [sys.executable, "-m", "promotion_service", "audit", "verify"]}
    if args.before is not None:
        commands["verify, --before"] = commands["verify"]
    commands.update({name: [sys.executable, "-c", _FLOOR.format(query=QUERY, body=body),
                            libpq_url(url)] for name, body in FLOORS.items()})
    print(f"audit verify on PostgreSQL, load average {_load()} on {os.cpu_count()} CPUs")
    print(f"{'entries':>10} {'seed s':>7}  {'what':<26} {'s':>7} {'CPU s':>6} {'MB':>5} "
          f"{'x streamed':>10} {'load':>5}")
    ok = True
    for size in args.sizes:
        start = time.perf_counter()
        with psycopg.connect(libpq_url(url)) as conn:
            seeded = conn.execute("SELECT count(*) FROM audit_log").fetchone()[0]
        if seeded < size:
            seed(url, size - seeded, checkpoint_file=checkpoints,
                 key=key_file.read_bytes().strip())
        seed_seconds = time.perf_counter() - start
        results = {}
        for name, command in commands.items():
            tree = args.before if name == "verify, --before" else ROOT
            results[name] = _measure(command, env | {"PYTHONPATH": str(tree)})
            if name.startswith("verify"):
                ok = ok and results[name][2] == 0 and f"{size} entries" in results[name][3]
                if results[name][2] != 0:
                    print(results[name][3], file=sys.stderr)
        for n, (name, (seconds, rss, _, _, cpu, load)) in enumerate(results.items()):
            seeding = f"{seed_seconds:.1f}" if n == 0 else ""
            print(f"{size:>10,} {seeding:>7}  {name:<26} "
                  f"{seconds:>7.1f} {cpu:>6.1f} {rss:>5.0f} "
                  f"{seconds / results[STREAMED][0]:>10.2f} {load:>5.1f}")
    print(f"load average after: {_load()}; goal: 2,000,000 in < 60 s, flat memory")
    return 0 if ok else 1


_FLOOR = """
import sys, psycopg
url, QUERY = sys.argv[1], {query!r}
{body}
print(n)
"""


def _measure(command: list[str], env: dict[str, str],
             ) -> tuple[float, float, int, str, float, float]:
    """(seconds, peak RSS in MB, exit status, output, CPU seconds, the 1-minute load average
    at the end) of one child process."""
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    output = process.stdout.read().decode()
    process.stdout.close()
    process.returncode = os.waitstatus_to_exitcode(status)
    return (elapsed, usage.ru_maxrss / 1024, process.returncode, output,
            usage.ru_utime + usage.ru_stime, os.getloadavg()[0])


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="200000,2000000",
                        type=lambda text: sorted(int(n) for n in text.split(",")),
                        help="log sizes to verify at, ascending (default 200000,2000000)")
    parser.add_argument("--database-url",
                        help="a PostgreSQL database, empty or holding a log seeded by "
                             "benchmarks/seed_audit.py; default: a throw-away server")
    parser.add_argument("--checkpoint-file", type=Path,
                        help="the checkpoint file of the log already in --database-url")
    parser.add_argument("--key-file", type=Path, help="the key that signed it")
    parser.add_argument("--before", type=Path,
                        help="another checkout (e.g. a git worktree of main) whose "
                             "`audit verify` to time in the same run")
    args = parser.parse_args()
    if (args.checkpoint_file is None) != (args.key_file is None):
        parser.error("--checkpoint-file and --key-file go together")
    return args


if __name__ == "__main__":
    sys.exit(main())
