"""The overview page's server time with 200 applications x 4 environments and 100,000
releases (with their rollouts), on SQLite and on PostgreSQL, in one run; or (--audit) the
audit page's on databases already holding an audit log.

For each database: seeds the ledger with bulk INSERTs, signs a person in with Flask's test
client, then asks for each page of the overview (PAGE_SIZE projects a page) in turn and prints
p50/p95 of the time the app took (no network: the server's own time), the SQL statements a page
sent, and the load average. The floor, measured in the same run: the sign-in page (Flask,
the session, a template and the security headers, no ledger), so the ratio says what the
overview adds on this machine however loaded it is. Goal (issue 15): p95 under 150 ms on both.

    python benchmarks/pages.py [--projects 200] [--releases 100000] [--requests 40]
        [--databases sqlite,postgresql] [--database-url URL] [--profile]

PostgreSQL is a throw-away server (initdb, 127.0.0.1) unless --database-url names a fresh,
empty database. --profile prints the cProfile of the measured requests (top 25 by cumulative
time).

The audit page (issue 16: its cost the same at 2,000,000 entries as at 1,000):

    python benchmarks/pages.py --audit URL[,URL...] [--requests 40] [--code DIR]

measures GET /ui/audit on each database (migrated, its log seeded once with
benchmarks/seed_audit.py and reused: nothing is seeded here; a token is added to sign in,
with its audit entry) the same way, in turns, and prints per database the entries in the log,
the newest stored full verdict (how many entries it walked, how many came after it), p50/p95
of the page, this process's CPU, the SQL statements a page sent, the entries it hashed, the
floor (the sign-in page) and the load average. --code DIR imports the service from another
checkout (e.g. a `git worktree` of the code before: its page walks the whole log; use a few
--requests).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import re
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import yaml
from sqlalchemy import event, insert, inspect, select, text

ROOT = Path(__file__).resolve().parents[1]
# --code DIR: the service (and the benchmarks' helpers) from another checkout
CODE = Path(sys.argv[sys.argv.index("--code") + 1]).resolve() if "--code" in sys.argv else ROOT
sys.path.insert(0, str(CODE))

from benchmarks.postgres import postgres_url  # noqa: E402
from benchmarks.seeding import one_member_releases  # noqa: E402
from promotion_service import create_app, db  # noqa: E402
from promotion_service.db.models import Environment, Image, Project, Rollout, Scan, utcnow  # noqa: E402
from promotion_service.db.schema import upgrade  # noqa: E402
from promotion_service.domain.actor import Actor  # noqa: E402
from promotion_service.services import projects, tokens  # noqa: E402
from promotion_service.services.overview import PAGE_SIZE  # noqa: E402

ENVIRONMENTS = ["test", "qa", "staging", "production"]
POLICY = {"defaults": {"environments": [
    {"name": "test"}, {"name": "qa", "auto_promote": True},
    {"name": "staging", "required_approvals": 1},
    {"name": "production", "required_approvals": 2, "four_eyes": True}]}}
# a release goes on to the environment at position p when its number is a multiple of 2**p
STRIDES = [1, 2, 4, 8]


def seed(app, project_count: int, release_count: int) -> str:
    """The projects, their releases (one image each) and rollouts; a person's token."""
    actor = Actor.system("benchmark")
    per_project = release_count // project_count
    with db.session_for(app) as session:
        for p in range(project_count):
            projects.ensure_project(session, actor, f"bench/app-{p:03d}",
                                    app.extensions["promotion_policies"])
        _, token = tokens.create(session, actor, name="bench-person", role="release-manager")
    with db.session_for(app) as session:
        envs = {(e.project_id, e.name): e.id for e in session.scalars(select(Environment))}
        project_ids = list(session.scalars(select(Project.id).order_by(Project.id)))
    start = utcnow() - timedelta(days=30)
    for project_id in project_ids:
        repository = f"registry.local/bench/app-{project_id}"
        rows = [{"project_id": project_id, "repository": repository,
                 "digest": f"sha256:{project_id:08x}{n:056x}", "commit_sha": f"{n:040x}",
                 "ref": "main", "tags": [f"1.0.{n}"], "registered_by": "ci-bot",
                 "commit_time": start + timedelta(minutes=n)} for n in range(per_project)]
        with db.session_for(app) as session:
            ids = session.execute(insert(Image).returning(Image.id), rows).scalars().all()
            one_member_releases(session, project_id, list(zip(ids, rows, strict=True)))
            session.execute(insert(Scan), [{"image_id": i, "scanner": "trivy", "actor": "ci",
                                            "counts": {"critical": 0, "high": 0},
                                            "findings": []} for i in ids[-8:]])
            rollouts = []
            for n, image_id in enumerate(ids):
                for position, stride in enumerate(STRIDES):
                    if n % stride == 0:
                        at = start + timedelta(minutes=n, seconds=position)
                        rollouts.append({"release_id": image_id, "verified_at": at,
                                         "environment_id": envs[(project_id,
                                                                 ENVIRONMENTS[position])],
                                         "created_at": at})
            session.execute(insert(Rollout), rollouts)
    return token


def measure(app, token: str, requests: int, pages: int, profile: cProfile.Profile | None = None
            ) -> tuple[list[float], list[float], list[float], int]:
    """Milliseconds per overview page, pages 1..n in turn, after one warm-up round; the
    benchmark process's CPU milliseconds per page (the app's own work, which the load average
    stretches less than the wall clock; the database server's is not in it); the floor's
    milliseconds; and the SQL statements a page sent."""
    client = app.test_client()
    form = client.get("/ui/sign-in").text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    assert client.post("/ui/sign-in", data={"token": token, "csrf_token": csrf}).status_code \
        == 302
    for page in range(1, pages + 1):
        assert client.get(f"/ui/?page={page}").status_code == 200
    floor = []
    for _ in range(requests):
        began = time.perf_counter()
        assert client.get("/ui/sign-in").status_code == 200
        floor.append((time.perf_counter() - began) * 1000)
    times, cpu = [], []
    for n in range(requests):
        if profile is not None:
            profile.enable()
        began, cpu_began = time.perf_counter(), time.process_time()
        resp = client.get(f"/ui/?page={n % pages + 1}")
        times.append((time.perf_counter() - began) * 1000)
        cpu.append((time.process_time() - cpu_began) * 1000)
        if profile is not None:
            profile.disable()
        assert resp.status_code == 200 and resp.text.count('<td class="cell">') == PAGE_SIZE * 4
    statements = []

    def count(*_: object) -> None:
        statements.append(1)

    engine = db.engine_of(app)
    event.listen(engine, "before_cursor_execute", count)
    client.get("/ui/?page=1")
    event.remove(engine, "before_cursor_execute", count)
    return times, cpu, floor, len(statements)


def run(args: argparse.Namespace, url: str, work: str) -> None:
    """Seed the database `url` names, measure the overview, print the figures."""
    policy = Path(work) / "policies.yml"
    policy.write_text(yaml.safe_dump(POLICY))
    upgrade(url)
    app = create_app({"DATABASE_URL": url, "POLICY_FILE": str(policy),
                      "SECRET_KEY": "benchmark-secret-key-0123456789"})
    name = url.split(":")[0].split("+")[0]
    began = time.perf_counter()
    token = seed(app, args.projects, args.releases)
    print(f"{name}: seeded {args.projects} projects x {len(ENVIRONMENTS)} environments, "
          f"{args.releases} releases in {time.perf_counter() - began:.0f} s")
    if name == "postgresql":  # the statistics autovacuum would have gathered by now
        with db.engine_of(app).connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
    profile = cProfile.Profile() if args.profile else None
    load = os.getloadavg()
    times, cpu, floor, statements = measure(app, token, args.requests, args.projects // PAGE_SIZE,
                                       profile)
    p95 = statistics.quantiles(times, n=20)[-1]
    floor_p95 = statistics.quantiles(floor, n=20)[-1]
    print(f"{name}: overview page ({PAGE_SIZE} projects x 4 environments, candidates' gate "
          f"reasons): p50 {statistics.median(times):.0f} ms, p95 {p95:.0f} ms, "
          f"{statements} SQL statements (goal: p95 < 150 ms: {'met' if p95 < 150 else 'NOT met'})"
          f"; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    print(f"{name}: this process's CPU a page: p50 {statistics.median(cpu):.0f} ms, p95 "
          f"{statistics.quantiles(cpu, n=20)[-1]:.0f} ms")
    print(f"{name}: floor (the sign-in page): p50 {statistics.median(floor):.1f} ms, p95 "
          f"{floor_p95:.1f} ms; overview / floor at p95: {p95 / floor_p95:.1f}x")
    if profile is not None:
        pstats.Stats(profile).sort_stats("cumulative").print_stats(25)
    db.engine_of(app).dispose()


def measure_audit(urls: list[str], requests: int) -> None:
    """The audit page on each database, the databases in turn within each round."""
    from promotion_service.domain import audit_checkpoint

    hashed = [0]
    canonical = audit_checkpoint.stored_canonical

    def counted(fields: object) -> bytes:
        hashed[0] += 1
        return canonical(fields)

    audit_checkpoint.stored_canonical = counted
    apps, clients, times, cpu, floor = [], [], [], [], []
    for n, url in enumerate(urls):
        app = create_app({"DATABASE_URL": url,
                          "SECRET_KEY": "benchmark-secret-key-0123456789"})
        with db.session_for(app) as session:
            _, token = tokens.create(session, Actor.system("benchmark"),
                                     name=f"bench-audit-{os.getpid()}-{n}",
                                     role="release-manager")
        client = app.test_client()
        form = client.get("/ui/sign-in").text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
        assert client.post("/ui/sign-in", data={"token": token, "csrf_token": csrf}
                           ).status_code == 302
        assert client.get("/ui/audit").status_code == 200  # warm-up
        apps.append(app)
        clients.append(client)
        times.append([])
        cpu.append([])
        floor.append([])
    for _ in range(requests):
        for n, client in enumerate(clients):
            began = time.perf_counter()
            assert client.get("/ui/sign-in").status_code == 200
            floor[n].append((time.perf_counter() - began) * 1000)
            began, cpu_began = time.perf_counter(), time.process_time()
            resp = client.get("/ui/audit")
            times[n].append((time.perf_counter() - began) * 1000)
            cpu[n].append((time.process_time() - cpu_began) * 1000)
            assert resp.status_code == 200 and "chain" in resp.text
    load = os.getloadavg()
    for n, app in enumerate(apps):
        statements: list[int] = []

        def count(*_: object, seen: list[int] = statements) -> None:
            seen.append(1)

        engine = db.engine_of(app)
        event.listen(engine, "before_cursor_execute", count)
        hashed[0] = 0
        page = clients[n].get("/ui/audit").text
        event.remove(engine, "before_cursor_execute", count)
        with engine.connect() as conn:
            entries, last = conn.execute(text("SELECT count(*), max(id) FROM audit_log")).one()
            verdict = conn.execute(text(
                "SELECT entries, through_id FROM audit_verdicts ORDER BY id DESC LIMIT 1")
            ).first() if "audit_verdicts" in inspect(engine).get_table_names() else None
        since = ("no verdict stored" if verdict is None else
                 f"verdict of {verdict[0]:,} entries, {last - (verdict[1] or 0):,} since")
        line = re.search(r'<p class="[a-z]+ chain"[^>]*>(.*?)</p>', page, re.S)
        # p95 of 20 requests or more; of fewer, the slowest
        top = (f"p95 {statistics.quantiles(times[n], n=20)[-1]:.0f}" if len(times[n]) >= 20
               else f"slowest {max(times[n]):.0f}")
        print(f"audit page, {entries:,} entries ({since}; code: {CODE}): p50 "
              f"{statistics.median(times[n]):.0f} ms, {top} ms; this "
              f"process's CPU p50 {statistics.median(cpu[n]):.0f} ms; {len(statements)} SQL "
              f"statements, {hashed[0]:,} entries hashed a page; floor (sign-in page) p50 "
              f"{statistics.median(floor[n]):.1f} ms; {len(times[n])} requests; load average "
              f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
        print(f"  it says: {re.sub(r'<[^>]+>', '', line.group(1)) if line else '?'}")
        engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=200)
    parser.add_argument("--releases", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--databases", default="sqlite,postgresql",
                        help="which of sqlite,postgresql to measure (default: both)")
    parser.add_argument("--database-url", help="a fresh, empty PostgreSQL database "
                        "(default: a throw-away server)")
    parser.add_argument("--profile", action="store_true", help="print cProfile's top 25")
    parser.add_argument("--audit", help="measure the audit page instead, on these databases "
                        "(comma-separated URLs, each migrated and holding an audit log)")
    parser.add_argument("--code", type=Path, help="import the service from this checkout")
    args = parser.parse_args()
    if args.audit:
        measure_audit(args.audit.split(","), args.requests)
        return 0
    databases = args.databases.split(",")
    with tempfile.TemporaryDirectory() as work:
        if "sqlite" in databases:
            run(args, f"sqlite:///{work}/promotion.db", work)
        if "postgresql" in databases:
            with postgres_url(args.database_url) as url:
                run(args, url, work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
