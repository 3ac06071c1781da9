"""A list's page deep in a long history on PostgreSQL: by offset (page/page_size, with the
X-Pagination total) against by keyset (pagination=keyset and the cursor the Link header
carries), at the same depths, in one run; and both against the same list with a short history.

Seeds --images images, each with its one-member release (bulk INSERT ... SELECT), and a
short-history database of --small images beside it; ANALYZEs both (as autovacuum leaves a
live database); then asks GET /api/v1/images and /api/v1/releases for a page of --page-size
rows starting at each depth (0, 10%, 50%, 90% of the rows) through Flask's test client (the
server's own time, no network), --requests times each, interleaved, and prints the medians,
the ratios (offset / keyset at the same depth; each page / the short history's first page)
and the load average. Goal (issue 16): every keyset page within 1.5x of the short history's.
An offset page's X-Pagination total is counted up to 10,001 rows (past 10,000 the header has
no total); the run ends with EXPLAIN ANALYZE of that count on the long history.

    python benchmarks/list_pages.py [--images 1000000] [--small 1000] [--page-size 50]
                                    [--requests 15] [--database-url URL]

PostgreSQL is a throw-away server (initdb, 127.0.0.1) unless --database-url names a server
whose user may create databases (two are made: list_pages_big, list_pages_small).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.postgres import fresh_database, postgres_url  # noqa: E402
from promotion_service import create_app, db  # noqa: E402
from promotion_service.db.schema import upgrade  # noqa: E402
from promotion_service.domain.actor import Actor  # noqa: E402
from promotion_service.services import projects, tokens  # noqa: E402

PROJECT = "group/app"
DEPTHS = (0.0, 0.1, 0.5, 0.9)
LISTS = ("images", "releases")
SEED = [
    """INSERT INTO images (project_id, repository, digest, commit_sha, ref, tags,
         registered_by, created_at)
       SELECT :project, 'registry.example.com/group/app', 'sha256:' || lpad(to_hex(g), 64, '0'),
              lpad(to_hex(g), 40, '0'), 'main', '[]', 'benchmark',
              now() - make_interval(secs => :rows - g)
       FROM generate_series(1, :rows) g""",
    """INSERT INTO releases (id, project_id, digest, member_count, commit_sha, ref, tags,
         registered_by, created_at)
       SELECT id, project_id, 'sha256:' || md5('r' || id) || md5('s' || id), 1, commit_sha,
              ref, tags, registered_by, created_at FROM images""",
    """INSERT INTO release_members (release_id, name, image_id, repository, digest, built)
       SELECT id, 'app', id, repository, digest, true FROM images""",
    "SELECT setval(pg_get_serial_sequence('releases', 'id'), (SELECT max(id) FROM releases))",
]


def seed(url: str, rows: int) -> tuple[object, str]:
    """A migrated database with `rows` images and releases; the app and a reader's token."""
    upgrade(url)
    app = create_app({"DATABASE_URL": url, "TOKEN_CACHE_SECONDS": 60})
    actor = Actor.system("benchmark")
    with db.session_for(app) as session:
        project = projects.ensure_project(session, actor, PROJECT,
                                          app.extensions["promotion_policies"])
        _, token = tokens.create(session, actor, name="bench-reader", role="release-manager")
        project_id = project.id
    with db.engine_of(app).begin() as conn:
        for statement in SEED:
            conn.execute(text(statement), {"project": project_id, "rows": rows})
    with db.engine_of(app).connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    return app, token


def queries(rows: int, page_size: int) -> list[tuple[str, str, dict[str, object]]]:
    """(list, how, query) for a page at each depth: by offset and by keyset (ids run 1..rows,
    newest first, so the row at depth d has id rows - d)."""
    found = []
    for name in LISTS:
        for depth in DEPTHS:
            skip = int(rows * depth) // page_size * page_size
            label = f"{name} at {depth:.0%}"
            found.append((label, "offset", {"page": skip // page_size + 1,
                                            "page_size": page_size}))
            keyset = {"pagination": "keyset", "page_size": page_size}
            found.append((label, "keyset", keyset | ({"cursor": rows - skip + 1} if skip else {})))
    return found


def measure(targets: dict[str, tuple[object, str, int]], args: argparse.Namespace
            ) -> dict[str, dict[tuple[str, str], float]]:
    """Median milliseconds per page for each database, (list at depth, offset|keyset);
    the databases and pages interleaved, so a change in load hits all alike."""
    times: dict[str, dict[tuple[str, str], list[float]]] = {name: {} for name in targets}
    first: dict[tuple[str, str], list[int]] = {}
    for round_ in range(args.requests + 1):  # round 0 warms the caches up
        for name, (app, token, rows) in targets.items():
            client = app.test_client()
            auth = {"Authorization": f"Bearer {token}"}
            for label, how, query in queries(rows, args.page_size):
                began = time.perf_counter()
                resp = client.get(f"/api/v1/{label.split()[0]}", query_string=query,
                                  headers=auth)
                took = (time.perf_counter() - began) * 1000
                assert resp.status_code == 200, resp.text
                ids = [row["id"] for row in resp.json]
                assert len(ids) == args.page_size, (name, label, how, len(ids))
                # the keyset page holds the rows of the offset page at the same depth
                assert first.setdefault((name, label), ids) == ids, (name, label, how)
                if round_:
                    times[name].setdefault((label, how), []).append(took)
    return {name: {key: statistics.median(values) for key, values in by_page.items()}
            for name, by_page in times.items()}


def explain_count(app: object, token: str, name: str) -> str:
    """EXPLAIN ANALYZE of the total's count an offset first page of the list sends."""
    from tests.promotion_service.helpers import sent_statements

    with sent_statements(app) as sent:
        resp = app.test_client().get(f"/api/v1/{name}",
                                     headers={"Authorization": f"Bearer {token}"})
    statement, parameters = next(s for s in sent if s[0].startswith("SELECT count(*)"))
    with db.engine_of(app).connect() as conn:
        plan = conn.exec_driver_sql(f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}",
                                    parameters).scalar_one()[0]
    nodes, node = [], plan["Plan"]
    while node:
        nodes.append(node["Node Type"] + (f" on {node['Relation Name']}"
                                          if "Relation Name" in node else ""))
        node = (node.get("Plans") or [None])[0]
    return (f"{name}: X-Pagination {resp.headers['X-Pagination']}; its count: "
            f"{plan['Execution Time']:.1f} ms, {' > '.join(nodes)}")


def report(big: dict, small: dict, args: argparse.Namespace) -> None:
    load = os.getloadavg()
    print(f"\nlist pages on PostgreSQL: {args.images:,} images and releases (short history: "
          f"{args.small:,}), {args.page_size} rows a page, medians of {args.requests} "
          f"interleaved requests in-process; load average {load[0]:.1f} {load[1]:.1f} "
          f"{load[2]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'page':<20}{'offset ms':>11}{'keyset ms':>11}{'offset/keyset':>15}"
          f"{'keyset/short':>14}{'offset/short':>14}")
    for name in LISTS:
        floor = small[(f"{name} at 0%", "keyset")]
        for depth in DEPTHS:
            label = f"{name} at {depth:.0%}"
            offset, keyset = big[(label, "offset")], big[(label, "keyset")]
            print(f"{label:<20}{offset:>11.1f}{keyset:>11.1f}{offset / keyset:>14.1f}x"
                  f"{keyset / floor:>13.2f}x{offset / floor:>13.1f}x")
        print(f"{name + ' (short)':<20}{small[(f'{name} at 0%', 'offset')]:>11.1f}"
              f"{floor:>11.1f}")
    worst = max(big[(f"{n} at {d:.0%}", "keyset")] / small[(f"{n} at 0%", "keyset")]
                for n in LISTS for d in DEPTHS)
    print(f"worst keyset page / short history's first keyset page: {worst:.2f}x (goal <= 1.5x: "
          f"{'met' if worst <= 1.5 else 'NOT met'})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--page-size", type=int, default=50)
    parser.add_argument("--requests", type=int, default=15)
    parser.add_argument("--database-url", help="a PostgreSQL server (default: a throw-away one)")
    args = parser.parse_args()
    with postgres_url(args.database_url) as server:
        admin = create_engine(server, isolation_level="AUTOCOMMIT")
        urls = {}
        for name in ("big", "small"):
            urls[name] = fresh_database(admin, server, f"list_pages_{name}")
        began = time.perf_counter()
        big_app, big_token = seed(urls["big"], args.images)
        small_app, small_token = seed(urls["small"], args.small)
        print(f"# seeded in {time.perf_counter() - began:.0f} s; load average "
              f"{os.getloadavg()}", file=sys.stderr)
        medians = measure({"big": (big_app, big_token, args.images),
                           "small": (small_app, small_token, args.small)}, args)
        report(medians["big"], medians["small"], args)
        for name in LISTS:
            print(explain_count(big_app, big_token, name))
        for app in (big_app, small_app):
            db.engine_of(app).dispose()
        with admin.connect() as conn:
            for name in urls:
                conn.execute(text(f"DROP DATABASE IF EXISTS list_pages_{name} WITH (FORCE)"))
        admin.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
