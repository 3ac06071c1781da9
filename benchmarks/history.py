"""Cost flat in history on PostgreSQL, through the real server: the gate, the promotion
request, keyset list pages and the overview page with 1,000 images against 1,000,000 images,
100,000 releases and 2,000,000 audit entries, in one run; and the server's memory after it.

Seeds two databases on one PostgreSQL server with INSERT ... SELECT generate_series (no row
goes through Python): --small and --images images in releases of 10 (so 100 and 100,000
releases) spread over 10 projects, each image scanned, each release deployed and verified in
test, every 4th promoted, deployed and verified in staging, every 16th approved and live in
production, and --audit-per-image audit entries an image; the newest --promotions + 1 releases
of each are the candidates (verified in test, never promoted). ANALYZEs both (as autovacuum
leaves a live database) and prints how long seeding took. Then starts `promotion-service serve`
on each (waitress, --threads) and, in --promotions interleaved rounds (a change in load hits
both alike), asks each over HTTP with one keep-alive connection: the gate for a candidate in
staging (--gates calls a round), POST /api/v1/promotions for a fresh candidate (the gate, the
promotion, its outbox row and audit entry: real work every call), the images and the audit
lists by keyset 90% deep, and the overview page of a signed-in person. Prints p50/p95 of each
at each size, the ratios (the large history's p50 / the short's: goal, issue 16, at most 1.5x),
the load average, and each server's RSS (VmRSS) once ready and after the run, and its peak
(VmHWM; goal: under 120 MB).

    python benchmarks/history.py [--images 1000000] [--small 1000] [--audit-per-image 2]
                                 [--promotions 60] [--gates 5] [--threads 8]
                                 [--database-url URL] [--keep]

PostgreSQL is a throw-away server (initdb, 127.0.0.1) unless --database-url names a server
whose user may create databases (two are made: history_big and history_small, dropped after
unless --keep). On 2 loaded cores seeding 1,000,000 images takes minutes; a smaller --images
gives the same figures faster for a smaller history.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests
import yaml
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.postgres import fresh_database, postgres_url  # noqa: E402
from benchmarks.seeding import MEMBERS, PROJECTS, history_statements  # noqa: E402
from benchmarks.service import _server  # noqa: E402
from promotion_service import create_app, db  # noqa: E402
from promotion_service.db.schema import upgrade  # noqa: E402
from promotion_service.domain.actor import Actor  # noqa: E402
from promotion_service.services import projects, tokens  # noqa: E402

POLICY = {"defaults": {"environments": [
    {"name": "test"}, {"name": "staging", "max_severity": "high"},
    {"name": "production", "required_approvals": 1}]}}
SECRET = "benchmark-secret-key-0123456789abcdef"
CALLS = ("gate", "promotion request", "images keyset 90%", "audit keyset 90%", "overview page")


def seed(url: str, images: int, audit: int, candidates: int, policy: Path) -> str:
    """A migrated database holding the history; a release manager's token."""
    upgrade(url)
    app = create_app({"DATABASE_URL": url, "POLICY_FILE": str(policy)})
    actor = Actor.system("benchmark")
    with db.session_for(app) as session:
        first = min(projects.ensure_project(session, actor, f"bench/app-{p}",
                                            app.extensions["promotion_policies"]).id
                    for p in range(PROJECTS))
        _, token = tokens.create(session, actor, name="bench-rm", role="release-manager")
    params = {"first": first, "projects": PROJECTS, "members": MEMBERS, "images": images,
              "releases": images // MEMBERS, "audit": audit,
              "last": images // MEMBERS - candidates}
    with db.engine_of(app).begin() as conn:
        for statement in history_statements():
            conn.execute(text(statement), params)
    with db.engine_of(app).connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    db.engine_of(app).dispose()
    return token


class Client:
    """One keep-alive connection to a server, signed in to the web pages too."""

    def __init__(self, base: str, token: str, releases: int, audit: int,
                 candidates: int) -> None:
        self.base, self.releases, self.audit = base, releases, audit
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"
        form = self.http.get(f"{base}/ui/sign-in").text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
        signed_in = self.http.post(f"{base}/ui/sign-in", allow_redirects=False,
                                   data={"token": token, "csrf_token": csrf})
        assert signed_in.status_code == 302, signed_in.text
        self.next_candidate = releases - candidates + 1

    def timed(self, method: str, path: str, expect: int, **kwargs: object) -> float:
        began = time.perf_counter()
        resp = self.http.request(method, self.base + path, **kwargs)
        took = (time.perf_counter() - began) * 1000
        assert resp.status_code == expect, (path, resp.status_code, resp.text[:500])
        if path.startswith("/api/v1/gate"):
            assert resp.json()["allowed"], resp.json()
        return took

    def round(self, gates: int) -> dict[str, list[float]]:
        """Milliseconds of each call once (the gate `gates` times)."""
        gate = {"release_id": self.releases, "environment": "staging"}
        release, self.next_candidate = self.next_candidate, self.next_candidate + 1
        assert release < self.releases, "more promotions than candidates"
        deep_image = self.releases * MEMBERS // 10
        return {
            "gate": [self.timed("GET", "/api/v1/gate", 200, params=gate) for _ in range(gates)],
            "promotion request": [self.timed("POST", "/api/v1/promotions", 201, json={
                "release_id": release, "environment": "staging"})],
            "images keyset 90%": [self.timed("GET", "/api/v1/images", 200, params={
                "pagination": "keyset", "page_size": 50, "cursor": deep_image})],
            "audit keyset 90%": [self.timed("GET", "/api/v1/audit", 200, params={
                "pagination": "keyset", "page_size": 50, "cursor": self.audit // 10})],
            "overview page": [self.timed("GET", "/ui/", 200)],
        }


def candidates_of(releases: int, promotions: int) -> int:
    """The newest releases kept fresh for the promotions (and the gate's, the newest)."""
    return min(promotions + 1, releases - 1)


def rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process in MB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return tuple(int(re.search(rf"{key}:\s+(\d+) kB", status).group(1)) / 1024
                 for key in ("VmRSS", "VmHWM"))


def measure(args: argparse.Namespace, servers: dict[str, tuple[str, str, int, int, int]]
            ) -> dict[str, dict[str, list[float]]]:
    """Each call's milliseconds on each server, the servers interleaved within each round
    (round 0 warms caches and prepared statements up and is not counted)."""
    clients = {name: Client(*spec) for name, spec in servers.items()}
    times: dict[str, dict[str, list[float]]] = {name: {c: [] for c in CALLS} for name in servers}
    for n in range(args.promotions):
        for name, client in clients.items():
            for call, took in client.round(args.gates).items():
                if n:
                    times[name][call] += took
        if n % 10 == 0:
            print(f"# round {n}: load average {os.getloadavg()}", file=sys.stderr)
    return times


def report(args: argparse.Namespace, times: dict[str, dict[str, list[float]]],
           memory: dict[str, tuple[float, float, float]],
           seeded: dict[str, float]) -> None:
    load = os.getloadavg()
    audit = args.images * args.audit_per_image
    print(f"\ncost flat in history, PostgreSQL, through `promotion-service serve` (waitress, "
          f"{args.threads} threads, one keep-alive client): {args.images:,} images, "
          f"{args.images // MEMBERS:,} releases, {audit:,} audit entries (seeded in "
          f"{seeded['big']:.0f} s) against {args.small:,} images (seeded in "
          f"{seeded['small']:.0f} s); {args.promotions - 1} interleaved rounds; load average "
          f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'call':<20}{'calls':>6}{'short p50':>11}{'short p95':>11}{'large p50':>11}"
          f"{'large p95':>11}{'large/short p50':>17}{'p95':>7}")
    worst = 0.0
    for call in CALLS:
        small, big = times["small"][call], times["big"][call]
        s50, b50 = statistics.median(small), statistics.median(big)
        s95, b95 = (statistics.quantiles(x, n=20)[-1] for x in (small, big))
        worst = max(worst, b50 / s50)
        print(f"{call:<20}{len(big):>6}{s50:>11.1f}{s95:>11.1f}{b50:>11.1f}{b95:>11.1f}"
              f"{b50 / s50:>16.2f}x{b95 / s95:>6.2f}x")
    print(f"worst large/short p50: {worst:.2f}x (goal <= 1.5x: "
          f"{'met' if worst <= 1.5 else 'NOT met'})")
    for name, (start, rss, hwm) in memory.items():
        label = f"{args.images:,}" if name == "big" else f"{args.small:,}"
        print(f"server RSS, {label} images: {start:.0f} MB once ready, {rss:.0f} MB after the "
              f"run (peak {hwm:.0f} MB; goal < 120 MB: {'met' if hwm < 120 else 'NOT met'})")


def main(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="history-bench-") as work:
        return run(args, Path(work) / "policies.yml")


def run(args: argparse.Namespace, policy: Path) -> int:
    """Seed both databases, measure both servers, print the figures."""
    policy.write_text(yaml.safe_dump(POLICY))
    sizes = {"small": args.small, "big": args.images}
    with postgres_url(args.database_url) as server:
        admin = create_engine(server, isolation_level="AUTOCOMMIT")
        urls, tokens_, seeded = {}, {}, {}
        for name, images in sizes.items():
            urls[name] = fresh_database(admin, server, f"history_{name}")
            began = time.perf_counter()
            tokens_[name] = seed(urls[name], images, images * args.audit_per_image,
                                 candidates_of(images // MEMBERS, args.promotions), policy)
            seeded[name] = time.perf_counter() - began
            print(f"# {name}: seeded {images:,} images in {seeded[name]:.0f} s; load average "
                  f"{os.getloadavg()}", file=sys.stderr)
        command = [sys.executable, "-m", "promotion_service", "serve", "--bind", "{bind}",
                   "--threads", str(args.threads)]
        env = {name: dict(os.environ, PROMOTION_DATABASE_URL=url,
                          PROMOTION_POLICY_FILE=str(policy), PROMOTION_SECRET_KEY=SECRET)
               for name, url in urls.items()}
        with _server(command, env["small"], "/ready") as small, \
             _server(command, env["big"], "/ready") as big:
            started = {"small": rss_mb(small.proc.pid)[0], "big": rss_mb(big.proc.pid)[0]}
            times = measure(args, {
                name: (srv.base, tokens_[name], sizes[name] // MEMBERS,
                       sizes[name] * args.audit_per_image,
                       candidates_of(sizes[name] // MEMBERS, args.promotions))
                for name, srv in (("small", small), ("big", big))})
            memory = {"small": (started["small"], *rss_mb(small.proc.pid)),
                      "big": (started["big"], *rss_mb(big.proc.pid))}
        report(args, times, memory, seeded)
        if not args.keep:
            with admin.connect() as conn:
                for name in urls:
                    conn.execute(text(f"DROP DATABASE IF EXISTS history_{name} WITH (FORCE)"))
        admin.dispose()
    return 0


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1_000_000,
                        help="the large history's images (a tenth as many releases)")
    parser.add_argument("--small", type=int, default=1_000, help="the short history's images")
    parser.add_argument("--audit-per-image", type=int, default=2)
    parser.add_argument("--promotions", type=int, default=60,
                        help="rounds: one promotion request each, on each database")
    parser.add_argument("--gates", type=int, default=5, help="gate calls a round")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--database-url", help="a PostgreSQL server (default: a throw-away one)")
    parser.add_argument("--keep", action="store_true", help="keep the two databases after")
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(main(_args()))
