"""The outbox under a burst: promotions committed at once, delivered to GitLab by workers.

One run, all on 127.0.0.1: a throw-away PostgreSQL (or --database-url), the GitLab API double
failing a share of the pipeline triggers (a 500, or Rack::Attack's 429 with Retry-After), and
`promotion-service worker` processes. The promotions and their outbox rows are committed in
one transaction while the workers poll; the clock runs from that commit until the last
pipeline is triggered. The floor: the same number of triggers sent straight to the double by
as many processes (no database, no retries of failures: each failed trigger is sent again at
once). Prints throughput and its ratio to the floor, triggers per promotion (duplicates and
missing ones), each worker's peak RSS and the load average.

Goals (issue 16): >= 100 promotions/s with two workers and 10% failures, every promotion
triggered exactly once, each worker under 120 MB RSS.

    python benchmarks/outbox_burst.py [--promotions 1000] [--workers 2] [--fail-rate 0.1]
        [--rate-limit-period 1] [--batch-size 50] [--concurrency 4] [--database-url URL]
        [--worker-logs DIR]

--rate-limit-period is the throttle period a 429's Retry-After counts to (GitLab's default
period is 60 s: a worker then waits up to a minute for those rows, as GitLab asks).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from sqlalchemy import func, insert, select

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from benchmarks.postgres import postgres_url  # noqa: E402
from benchmarks.seeding import one_member_releases  # noqa: E402
from docker_cd_local.gitlab_double import GitLabDouble  # noqa: E402
from promotion_service import create_app, db  # noqa: E402
from promotion_service.db.models import Image, Outbox, Release  # noqa: E402
from promotion_service.db.schema import upgrade  # noqa: E402
from promotion_service.domain.actor import Actor  # noqa: E402
from promotion_service.services import lookups, projects  # noqa: E402
from promotion_service.services.promotion import create as create_promotion  # noqa: E402

PROJECT, PROJECT_ID = "bench/app", 42
ACCESS_TOKEN, TRIGGER_TOKEN = "glpat-bench", "glptt-bench"
TRIGGER_PATH = "/projects/*/trigger/pipeline"


def main() -> int:
    args = _args()
    with postgres_url(args.database_url) as url:
        return _run(args, url)


def _run(args: argparse.Namespace, url: str) -> int:
    with GitLabDouble(access_token=ACCESS_TOKEN) as gitlab:
        gitlab.add_project(PROJECT_ID, PROJECT, trigger_token=TRIGGER_TOKEN)
        gitlab.fail_randomly("POST", TRIGGER_PATH, rate=args.fail_rate,
                             rate_limit_period=args.rate_limit_period, seed=16)
        floor = _floor(gitlab, args)
        gitlab.reset()
        gitlab.fail_randomly("POST", TRIGGER_PATH, rate=args.fail_rate,
                             rate_limit_period=args.rate_limit_period, seed=16)
        load_before = os.getloadavg()
        outcome = _burst(gitlab, url, args)
    _report(args, floor, outcome, load_before)
    return 0 if outcome["ok"] else 1


def _floor(gitlab: GitLabDouble, args: argparse.Namespace) -> float:
    """Triggers/s straight to the double from --workers processes, failures sent again."""
    shares = [range(n, args.promotions, args.workers) for n in range(args.workers)]
    start = time.perf_counter()
    with multiprocessing.Pool(args.workers) as pool:
        pool.starmap(_bare_triggers, [(gitlab.url, list(share)) for share in shares])
    elapsed = time.perf_counter() - start
    assert sum(gitlab.triggers_per_promotion().values()) == args.promotions
    return args.promotions / elapsed


def _bare_triggers(base: str, numbers: list[int]) -> None:
    session = requests.Session()
    url = f"{base}/api/v4/projects/{PROJECT_ID}/trigger/pipeline"
    for n in numbers:
        while session.post(url, data={"token": TRIGGER_TOKEN, "ref": "main",
                                      "variables[CD_PROMOTION_ID]": str(n)},
                           timeout=10).status_code != 201:
            pass


def _seed(url: str, count: int) -> tuple[object, list[int]]:
    """A project with `count` one-image releases; no promotions yet."""
    upgrade(url)
    app = create_app({"DATABASE_URL": url})
    actor = Actor.system("benchmark")
    with db.session_for(app) as session:
        project = projects.ensure_project(session, actor, PROJECT,
                                          app.extensions["promotion_policies"])
        project_id = project.id
    rows = [{"project_id": project_id, "repository": "registry.local/bench/app",
             "digest": "sha256:" + hashlib.sha256(str(n).encode()).hexdigest(),
             "commit_sha": f"{n:040x}", "ref": "main", "registered_by": "benchmark"}
            for n in range(count)]
    with db.session_for(app) as session:
        ids = session.execute(insert(Image).returning(Image.id), rows).scalars().all()
        one_member_releases(session, project_id, list(zip(ids, rows, strict=True)))
    return app, list(ids)


def _commit_burst(app: object, release_ids: list[int]) -> None:
    """Every promotion and its outbox row in one transaction, as the service writes each."""
    actor = Actor.system("benchmark")
    with db.session_for(app) as session, db.write_transaction(session):
        project_id = session.get(Release, release_ids[0]).project_id
        env = lookups.environment(session, project_id, "staging")
        for release_id in release_ids:
            create_promotion(session, actor, session.get(Release, release_id), env, "manual",
                             "burst benchmark")


def _burst(gitlab: GitLabDouble, url: str, args: argparse.Namespace) -> dict:
    app, release_ids = _seed(url, args.promotions)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PROMOTION_")},
           "PYTHONPATH": str(ROOT), "PROMOTION_DATABASE_URL": url,
           "PROMOTION_GITLAB_URL": gitlab.url, "PROMOTION_GITLAB_TOKEN": ACCESS_TOKEN,
           "PROMOTION_GITLAB_TRIGGER_TOKEN": TRIGGER_TOKEN,
           "PROMOTION_DISPATCHER_POLL_SECONDS": "0.05",
           "PROMOTION_DISPATCHER_BATCH_SIZE": str(args.batch_size),
           "PROMOTION_DISPATCHER_CONCURRENCY": str(args.concurrency),
           "PROMOTION_LOG_LEVEL": "WARNING"}
    with contextlib.ExitStack() as stack:
        # their logs go to files: a pipe nobody reads would stop a worker once it filled up
        logs = [stack.enter_context(tempfile.TemporaryFile()) for _ in range(args.workers)]
        workers = [subprocess.Popen([sys.executable, "-m", "promotion_service", "worker"], env=env,
                                    stdout=subprocess.DEVNULL, stderr=log) for log in logs]
        try:
            time.sleep(3)  # let them import and start polling
            for worker in workers:
                if worker.poll() is not None:
                    raise RuntimeError("worker exited: " + "\n".join(_log_texts(logs)))
            start = time.perf_counter()
            _commit_burst(app, release_ids)
            committed = time.perf_counter()
            deadline = committed + args.timeout
            while time.perf_counter() < deadline:
                if _pending(app) == 0:
                    break
                time.sleep(0.05)
            done = time.perf_counter()
            rss = [_peak_rss_mb(w.pid) for w in workers]
            load = os.getloadavg()
        finally:
            for worker in workers:
                worker.terminate()
            for worker in workers:
                try:
                    worker.wait(15)
                except subprocess.TimeoutExpired:
                    worker.kill()
        texts = _log_texts(logs)
    worker_log = "\n".join(texts)
    if args.worker_logs:
        Path(args.worker_logs).mkdir(parents=True, exist_ok=True)
        for n, text in enumerate(texts):
            (Path(args.worker_logs) / f"worker-{n}.log").write_text(text)
    counts = gitlab.triggers_per_promotion()
    with db.session_for(app, write=False) as session:
        states = dict(session.execute(select(Outbox.state, func.count()).group_by(Outbox.state))
                      .all())
    db.engine_of(app).dispose()
    failed_calls = sum(1 for c in gitlab.calls_to("POST", TRIGGER_PATH) if c.status != 201)
    expected = {str(n) for n in _promotion_ids(url)}
    duplicates = sum(1 for key, n in counts.items() if n > 1)
    missing = len(expected - set(counts))
    return {"commit_seconds": committed - start, "seconds": done - committed, "rss": rss,
            "load": load, "duplicates": duplicates, "missing": missing, "states": states,
            "failed_calls": failed_calls, "unexpected": len(set(counts) - expected),
            "errors": [line for line in worker_log.splitlines() if "ERROR" in line],
            "put_off": sum("periodic task put off" in line for line in worker_log.splitlines()),
            "ok": duplicates == 0 and missing == 0 and states.get("sent") == args.promotions}


def _log_texts(logs: list) -> list[str]:
    texts = []
    for log in logs:
        log.seek(0)
        texts.append(log.read().decode(errors="replace"))
    return texts


def _pending(app: object) -> int:
    with db.session_for(app, write=False) as session:
        return session.scalar(select(func.count()).select_from(Outbox)
                              .where(Outbox.state == "pending"))


def _promotion_ids(url: str) -> list[int]:
    from promotion_service.db.models import Promotion

    app = create_app({"DATABASE_URL": url})
    with db.session_for(app, write=False) as session:
        ids = list(session.scalars(select(Promotion.id)))
    db.engine_of(app).dispose()
    return ids


def _peak_rss_mb(pid: int) -> float:
    """The process's peak resident set (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _report(args: argparse.Namespace, floor: float, outcome: dict,
            load_before: tuple[float, float, float]) -> None:
    rate = args.promotions / outcome["seconds"]
    print(f"outbox burst: {args.promotions} promotions, {args.workers} workers, "
          f"{args.fail_rate:.0%} of triggers failing (500 / 429, Retry-After up to "
          f"{args.rate_limit_period} s), batch {args.batch_size}, {args.concurrency} calls in "
          "flight per worker")
    print(f"  committed in one transaction in {outcome['commit_seconds']:.2f} s")
    print(f"  delivered in {outcome['seconds']:.2f} s: {rate:.0f} promotions/s "
          f"(goal >= 100/s)")
    print(f"  floor (bare triggers from {args.workers} processes, no database): "
          f"{floor:.0f}/s; ratio {rate / floor:.2f}")
    print(f"  trigger calls refused by the double: {outcome['failed_calls']}")
    print(f"  promotions triggered more than once: {outcome['duplicates']}; never: "
          f"{outcome['missing']}; pipelines for no promotion: {outcome['unexpected']}")
    print(f"  outbox rows by state: {outcome['states']}")
    print(f"  errors the workers logged: {len(outcome['errors'])}"
          + "".join(f"\n    {line}" for line in outcome["errors"][:5]))
    print(f"  periodic checks put off (database busy; warnings): {outcome['put_off']}")
    print("  worker peak RSS: " + ", ".join(f"{mb:.0f} MB" for mb in outcome["rss"])
          + " (goal < 120 MB)")
    print(f"  load average before/after: {' '.join(f'{x:.2f}' for x in load_before)} / "
          f"{' '.join(f'{x:.2f}' for x in outcome['load'])} on {os.cpu_count()} CPUs")


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--promotions", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--fail-rate", type=float, default=0.1)
    parser.add_argument("--rate-limit-period", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=4,
                        help="calls in flight per worker (PROMOTION_DISPATCHER_CONCURRENCY; "
                        "the service's default is 4)")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="give up waiting for delivery after this many seconds")
    parser.add_argument("--database-url", help="default: a throw-away PostgreSQL server")
    parser.add_argument("--worker-logs", metavar="DIR",
                        help="keep each worker's log (stderr) in DIR/worker-N.log")
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(main())
