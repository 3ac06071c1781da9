"""Database round trips per promotion the outbox dispatcher spends delivering a burst.

What bounds benchmarks/outbox_burst.py on a loaded machine is round trips, not bytes: each
costs the worker a wait and PostgreSQL a wake-up. This runs one dispatcher in this process
(the worker's code, the same settings) over a burst of promotions committed at once, with the
GitLab double failing a share of the triggers, and counts what it sends to PostgreSQL:
statements (an executemany counts once: psycopg pipelines it), BEGIN and COMMIT actually
sent (none in autocommit), pool checkouts (each pings the server), and how many of them ran
holding the writers' lock (the part two workers cannot do at once).

    python benchmarks/outbox_statements.py [--promotions 300] [--fail-rate 0.1]
        [--batch-size 50] [--concurrency 4] [--database-url URL]
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import threading
import time
from pathlib import Path

from sqlalchemy import event

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.outbox_burst import (
    ACCESS_TOKEN,
    PROJECT,
    PROJECT_ID,
    TRIGGER_PATH,
    TRIGGER_TOKEN,
    _commit_burst,
    _pending,
    _seed,
)
from benchmarks.postgres import postgres_url
from docker_cd_local.gitlab_double import GitLabDouble
from promotion_service import create_app, db
from promotion_service.outbox.dispatcher import from_app

LOCKED = "outbox_statements_locked"  # connection.info key: the writers' lock is held


def main() -> int:
    args = _args()
    with postgres_url(args.database_url) as url, \
            GitLabDouble(access_token=ACCESS_TOKEN) as gitlab:
        gitlab.add_project(PROJECT_ID, PROJECT, trigger_token=TRIGGER_TOKEN)
        gitlab.fail_randomly("POST", TRIGGER_PATH, rate=args.fail_rate, rate_limit_period=1,
                             seed=16)
        app, release_ids = _seed(url, args.promotions)
        _commit_burst(app, release_ids)
        worker = create_app({"DATABASE_URL": url, "GITLAB_URL": gitlab.url,
                             "GITLAB_TOKEN": ACCESS_TOKEN, "GITLAB_TRIGGER_TOKEN": TRIGGER_TOKEN,
                             "DISPATCHER_POLL_SECONDS": "0.05",
                             "DISPATCHER_BATCH_SIZE": str(args.batch_size),
                             "DISPATCHER_CONCURRENCY": str(args.concurrency)})
        counts = _count(db.engine_of(worker))
        dispatcher = from_app(worker)
        start = time.perf_counter()
        while _pending(app):
            if not dispatcher.run_once():
                time.sleep(0.05)
        seconds = time.perf_counter() - start
        triggers = collections.Counter(gitlab.triggers_per_promotion().values())
        db.engine_of(worker).dispose()
        db.engine_of(app).dispose()
    n = args.promotions
    print(f"outbox round trips: {n} promotions, one dispatcher, {args.fail_rate:.0%} of "
          f"triggers failing, batch {args.batch_size}, {args.concurrency} calls in flight")
    print(f"  delivered in {seconds:.2f} s; triggers per promotion: {dict(triggers)}")
    total = counts["statement"] + counts["BEGIN"] + counts["COMMIT"] + counts["checkout"]
    print(f"  round trips per promotion: {total / n:.2f} (statements "
          f"{counts['statement'] / n:.2f}, BEGIN {counts['BEGIN'] / n:.2f}, COMMIT "
          f"{counts['COMMIT'] / n:.2f}, pool checkouts with their ping "
          f"{counts['checkout'] / n:.2f})")
    print(f"  of them holding the writers' lock: {counts['locked'] / n:.2f} "
          f"({counts['locks']} write transactions)")
    print(f"  load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on "
          f"{os.cpu_count()} CPUs")
    return 0 if set(triggers) == {1} and sum(triggers.values()) == n else 1


def _count(engine: object) -> collections.Counter:
    """Count what the engine's connections send, from this moment."""
    counts: collections.Counter = collections.Counter()
    lock = threading.Lock()

    def add(key: str, connection: object = None) -> None:
        with lock:
            counts[key] += 1
            if connection is not None and connection.info.get(LOCKED):
                counts["locked"] += 1

    @event.listens_for(engine, "before_cursor_execute")
    def _statement(conn, cursor, statement, params, context, executemany):
        if "pg_advisory_xact_lock" in statement:
            conn.info[LOCKED] = True
            add("locks")
        add("statement", conn)

    def _sent(name: str):
        def listener(conn) -> None:
            if not conn.connection.dbapi_connection.autocommit:
                add(name, conn)
            if name != "BEGIN":
                conn.info.pop(LOCKED, None)
        return listener

    event.listen(engine, "begin", _sent("BEGIN"))
    event.listen(engine, "commit", _sent("COMMIT"))
    event.listen(engine, "rollback", _sent("COMMIT"))  # a ROLLBACK ends it alike
    event.listen(engine, "checkout", lambda *_: add("checkout"))
    return counts


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--promotions", type=int, default=300)
    parser.add_argument("--fail-rate", type=float, default=0.1)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--database-url", help="default: a throw-away PostgreSQL server")
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(main())
