"""The gate on PostgreSQL against a bare Flask endpoint doing one primary-key read on the
same PostgreSQL, both under waitress (the service's server) with the same threads, and wrk
with the same connections, interleaved in one run. Prints requests/s, p50/p99, the ratio and
the machine's load average (tests/promotion_service/db/test_round_trips.py counts the
gate's round trips: one per answer).

Goals (issue 16): gate >= 50% of the bare read's requests/s; gate p99 < 25 ms at 32
connections.

    python benchmarks/gate_postgres.py [--images 20000] [--duration 5] [--rounds 3]
                                       [--connections 32] [--threads 8] [--database-url URL]
                                       [--plan-cache-mode auto|force_generic_plan]

Without --database-url it starts a throw-away PostgreSQL (initdb; Debian's postgresql).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys

from postgres import postgres_url
from seed_audit import libpq_url
from service import REPO, _seed, _server, _wrk
from sqlalchemy import create_engine, text


def main() -> int:
    args = _args()
    if shutil.which("wrk") is None:
        print("Error: wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    with postgres_url(args.database_url) as url:
        return _run(args, url)


def _run(args: argparse.Namespace, url: str) -> int:
    print(f"# seeding {args.images:,} images into {url.split('@')[-1]}", file=sys.stderr)
    token, gate_digest = _seed(url, args.images)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS bare (id INTEGER PRIMARY KEY, body TEXT)"))
        conn.execute(text("INSERT INTO bare VALUES (1, 'x') ON CONFLICT DO NOTHING"))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
        database = conn.execute(text("SELECT current_database()")).scalar_one()
        # PostgreSQL's setting for statements the driver prepared (psycopg: after 5 runs)
        conn.execute(text(f'ALTER DATABASE "{database}" SET plan_cache_mode = '
                          f"{args.plan_cache_mode}"))
    engine.dispose()
    query = f"repository={REPO}&digest={gate_digest}&environment=staging"
    auth = {"Authorization": f"Bearer {token}"}
    waitress = ["--listen={bind}", f"--threads={args.threads}", "--asyncore-use-poll"]
    runs: dict[str, list[dict]] = {}
    with _server([sys.executable, "-m", "waitress", *waitress, "bare_app:app"],
                 dict(os.environ, BENCH_POSTGRES=libpq_url(url)), "/pg-read") as bare, \
         _server([sys.executable, "-m", "promotion_service", "serve", "--bind", "{bind}",
                  "--threads", str(args.threads)],
                 dict(os.environ, PROMOTION_DATABASE_URL=url), "/ready") as service:
        for _ in range(args.rounds):  # interleaved: a change in load hits both alike
            for name, server, kwargs in (
                ("bare PK read", bare, {"path": "/pg-read"}),
                ("gate", service, {"path": f"/api/v1/gate?{query}", "headers": auth}),
            ):
                runs.setdefault(name, []).append(_wrk(args, server, **kwargs))
            print(f"# load average {os.getloadavg()}", file=sys.stderr)
    results = {name: {key: statistics.median(r[key] for r in rs) for key in rs[0]}
               for name, rs in runs.items()}
    load = os.getloadavg()
    print(f"\ngate on PostgreSQL: waitress {args.threads} threads, wrk -t2 "
          f"-c{args.connections} -d{args.duration}s, medians of {args.rounds} interleaved "
          f"rounds, {args.images:,} images, plan_cache_mode {args.plan_cache_mode}; "
          f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'endpoint':<14}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}"
          f"{'server CPU us/req':>19}")
    for name, r in results.items():
        print(f"{name:<14}{r['rps']:>9.0f}{r['p50']:>9.2f}{r['p99']:>9.2f}{r['non2xx']:>9.0f}"
              f"{r['cpu_us']:>19.0f}")
    ratio = results["gate"]["rps"] / results["bare PK read"]["rps"]
    p99 = results["gate"]["p99"]
    print(f"\ngate / bare PK read throughput: {ratio:.2f} (goal >= 0.50) "
          f"{'OK' if ratio >= 0.5 else 'MISSED'}")
    print(f"gate p99: {p99:.1f} ms (goal < 25 ms) {'OK' if p99 < 25 else 'MISSED'}")
    cpu = results["bare PK read"]["cpu_us"] / results["gate"]["cpu_us"]
    print(f"the same ratio from the servers' CPU time per request (what throughput tends to "
          f"on an idle machine): {cpu:.2f}")
    return 0


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved rounds; figures are the medians")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--database-url", help="default: a throw-away PostgreSQL server")
    parser.add_argument("--plan-cache-mode", default="auto",
                        choices=("auto", "force_generic_plan", "force_custom_plan"),
                        help="set on the database for both servers (under auto, PostgreSQL "
                             "plans a connection's first 10 runs of the gate's query, then "
                             "keeps its generic plan)")
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(main())
