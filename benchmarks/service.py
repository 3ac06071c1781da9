"""Promotion service speed: the gate query and image registration vs bare Flask baselines,
and the promotion of a 10-image release vs a 1-image release.

Runs everything on 127.0.0.1 under waitress (the service's server, same threads) and wrk
(same connections), in one run: a bare constant-JSON endpoint, a bare one-INSERT and one-read
SQLite endpoint, then the service on a database seeded with 100,000 images. Prints
requests/s, p50/p99 and ratios.

Goals (issue 3): gate >= 1/2 of bare constant throughput with p99 < 25 ms; registration (with
its audit entry) >= 1/4 of the bare INSERT throughput. Issue 14: promoting a release of 10
images (two approvals, the promotion request, the gate) costs at most 1.5x promoting a release
of one image (measured in-process, the same steps through the Flask app, interleaved).

    python benchmarks/service.py [--images 100000] [--duration 5] [--rounds 3]
                                 [--connections 32] [--threads 8] [--database-url URL]
                                 [--releases 30]
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
import yaml
from sqlalchemy import insert

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from benchmarks.seeding import one_member_releases  # noqa: E402
from promotion_service import create_app, db  # noqa: E402
from promotion_service.db.models import Image, Scan, Verification  # noqa: E402
from promotion_service.db.schema import upgrade  # noqa: E402
from promotion_service.domain.actor import Actor  # noqa: E402
from promotion_service.services import lookups, projects, tokens  # noqa: E402

REPO = "registry.local/bench/app"
PROJECT = "bench/app"
REGISTER_LUA = """
local counter, threads = 0, 0
function setup(thread) thread:set("tid", threads); threads = threads + 1 end
function init(args) nonce = args[1]; token = args[2] end
function request()
  counter = counter + 1
  local hex = nonce .. string.format("%08x%016x", tid, counter)
  local digest = "sha256:" .. string.rep("0", 64 - #hex) .. hex
  local body = '{"project":"PROJECT","repository":"REPO","digest":"' .. digest ..
               '","commit_sha":"0123456789abcdef0123456789abcdef01234567","ref":"main"}'
  return wrk.format("POST", "/api/v1/images", {["Content-Type"] = "application/json",
                    ["Authorization"] = "Bearer " .. token}, body)
end
""".replace("PROJECT", PROJECT).replace("REPO", REPO)
POST_LUA = 'wrk.method = "POST"\n'


def main() -> int:
    args = _args()
    if args.promotions_only:
        work = Path(tempfile.mkdtemp(prefix="promotion-bench-"))
        try:
            _report_promotions(_promotions(work, args.releases))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return 0
    if shutil.which("wrk") is None:
        print("Error: wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="promotion-bench-"))
    try:
        return _run(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(args: argparse.Namespace, work: Path) -> int:
    url = args.database_url or f"sqlite:///{work}/service.db"
    print(f"# seeding {args.images:,} images into {url.split('@')[-1]}", file=sys.stderr)
    token, gate_digest = _seed(url, args.images)
    bare_env = dict(os.environ, BENCH_SQLITE=str(work / "bare.db"))
    service_env = dict(os.environ, PROMOTION_DATABASE_URL=url)
    auth = {"Authorization": f"Bearer {token}"}
    query = f"repository={REPO}&digest={gate_digest}&environment=staging"
    runs: dict[str, list[dict]] = {}
    with _server([sys.executable, "-m", "waitress", "--listen={bind}",
                  f"--threads={args.threads}", "--asyncore-use-poll", "bare_app:app"],
                 bare_env, "/constant") as bare, \
         _server([sys.executable, "-m", "promotion_service", "serve", "--bind", "{bind}",
                  "--threads", str(args.threads)], service_env, "/ready") as service:
        check = requests.get(f"{service.base}/api/v1/gate?{query}", headers=auth,
                             timeout=10).json()
        print(f"# gate answer: {check}", file=sys.stderr)
        # rounds interleave the endpoints, so a change in machine load hits all of them alike
        for _ in range(args.rounds):
            for name, server, kwargs in (
                ("bare constant", bare, {"path": "/constant"}),
                ("bare read", bare, {"path": "/read"}),
                ("bare insert", bare, {"path": "/insert", "lua": POST_LUA}),
                ("gate query", service, {"path": f"/api/v1/gate?{query}", "headers": auth}),
                ("register image", service, {"path": "/", "lua": REGISTER_LUA,
                                             "lua_args": [secrets.token_hex(4), token]}),
            ):
                runs.setdefault(name, []).append(_wrk(args, server, **kwargs))
    results = {name: {key: statistics.median(r[key] for r in rs) for key in rs[0]}
               for name, rs in runs.items()}
    _report(args, results)
    _report_promotions(_promotions(work, args.releases))
    return 0


def _seed(url: str, count: int) -> tuple[str, str]:
    upgrade(url)
    app = create_app({"DATABASE_URL": url})
    actor = Actor.system("benchmark")
    with db.session_for(app) as session:
        project = projects.ensure_project(session, actor, PROJECT,
                                          app.extensions["promotion_policies"])
        _, token = tokens.create(session, actor, name=f"bench-{secrets.token_hex(3)}", role="ci",
                                 project=PROJECT)
        project_id = project.id
        test_env = lookups.environment(session, project_id, "test").id
    batch = []
    for n in range(count):
        batch.append({"project_id": project_id, "repository": REPO,
                      "digest": f"sha256:{n:064x}", "commit_sha": f"{n:040x}", "ref": "main",
                      "tags": [f"build-{n}"], "registered_by": "benchmark"})
        if len(batch) == 10_000 or n == count - 1:
            with db.session_for(app) as session:
                ids = session.execute(insert(Image).returning(Image.id), batch).scalars().all()
                one_member_releases(session, project_id, list(zip(ids, batch, strict=True)))
            batch = []
    gate_digest = f"sha256:{count - 1:064x}"
    with db.session_for(app) as session:
        image = session.query(Image).filter_by(digest=gate_digest).one()
        session.add(Scan(image_id=image.id, scanner="trivy", counts={"critical": 0, "high": 0},
                         actor="benchmark"))
        session.add(Verification(release_id=image.id, environment_id=test_env, passed=True,
                                 actor="benchmark"))
    db.engine_of(app).dispose()
    return token, gate_digest


def _promotions(work: Path, releases: int) -> dict[int, float]:
    """Seconds per promotion of a release of 1 and of 10 images: two approvals, the request,
    the gate (in-process, so only the service's own work is timed; interleaved)."""
    policies = work / "policies.yml"
    policies.write_text(yaml.safe_dump({"defaults": {"environments": [
        {"name": "test"},
        {"name": "staging", "required_approvals": 2, "promote_on_approval": False,
         "max_severity": "high"}]}}))
    url = f"sqlite:///{work}/promotions.db"
    upgrade(url)
    app = create_app({"DATABASE_URL": url, "POLICY_FILE": str(policies),
                      "TOKEN_CACHE_SECONDS": 0})
    actor = Actor.system("benchmark")
    with db.session_for(app) as session:
        bearer = {role: "Bearer " + tokens.create(session, actor, name=f"{role}-{name}",
                                                  role=role, project=project)[1]
                  for role, name, project in (("ci", "ci", PROJECT), ("approver", "alice", None),
                                              ("release-manager", "rm", None))}
        bearer["bob"] = "Bearer " + tokens.create(session, actor, name="bob",
                                                  role="approver")[1]
    client = app.test_client()

    def call(method: str, path: str, who: str, **kw: object) -> dict:
        resp = client.open(f"/api/v1{path}", method=method,
                           headers={"Authorization": bearer[who]}, **kw)
        assert resp.status_code < 300, (path, resp.json)
        return resp.json

    spent: dict[int, list[float]] = {1: [], 10: []}
    for n in range(releases):
        for size in (1, 10):
            members = [{"name": f"m{i}", "repository": f"{REPO}/m{i}",
                        "digest": f"sha256:{size:04x}{n:08x}{i:052x}"} for i in range(size)]
            release = call("POST", "/releases", "ci", json={"project": PROJECT,
                                                            "members": members})
            for m in members:
                call("POST", "/scans", "ci", json={"repository": m["repository"],
                                                   "digest": m["digest"],
                                                   "counts": {"critical": 0}})
            ref = {"release_id": release["id"], "environment": "test"}
            call("POST", "/deployments", "ci", json=ref | {"state": "succeeded"})
            call("POST", "/verifications", "ci", json=ref | {"passed": True})
            staging = {"release_id": release["id"], "environment": "staging"}
            started = time.perf_counter()
            call("POST", "/approvals", "approver", json=staging)
            call("POST", "/approvals", "bob", json=staging)
            promotion = call("POST", "/promotions", "release-manager", json=staging)
            answer = call("GET", "/gate", "ci", query_string=staging | {
                "promotion_id": promotion["id"]})
            spent[size].append(time.perf_counter() - started)
            assert answer["allowed"], answer
    db.engine_of(app).dispose()
    return {size: statistics.median(times) for size, times in spent.items()}


def _report_promotions(seconds: dict[int, float]) -> None:
    ratio = seconds[10] / seconds[1]
    print(f"\npromotion (2 approvals, request, gate): 1 image {seconds[1] * 1000:.1f} ms, "
          f"10 images {seconds[10] * 1000:.1f} ms (medians)")
    print(f"10-image / 1-image release: {ratio:.2f}x (goal <= 1.5x) "
          f"{'OK' if ratio <= 1.5 else 'MISSED'}")


class _server:
    """Start a server on a free port; wait until `probe` answers; stop it afterwards."""

    def __init__(self, command: list[str], env: dict[str, str], probe: str) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.command = [part.replace("{bind}", f"127.0.0.1:{self.port}") for part in command]
        self.env, self.probe = env, probe

    def __enter__(self) -> _server:
        self.proc = subprocess.Popen(self.command, env=self.env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, cwd=HERE)
        base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(base + self.probe, timeout=5).status_code == 200:
                    self.base = base
                    return self
            except requests.RequestException:
                time.sleep(0.2)
        self.__exit__()
        raise RuntimeError(f"server did not start: {' '.join(self.command)}")

    def __exit__(self, *_: object) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a server process, all its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wrk(args: argparse.Namespace, server: _server, path: str, lua: str | None = None,
         lua_args: list[str] | None = None, headers: dict[str, str] | None = None) -> dict:
    command = ["wrk", "-t2", f"-c{args.connections}", f"-d{args.duration}s", "--latency"]
    for key, value in (headers or {}).items():
        command += ["-H", f"{key}: {value}"]
    script = None
    if lua:
        script = Path(tempfile.mkdtemp(prefix="wrk-")) / "script.lua"
        script.write_text(lua)
        command += ["-s", str(script)]
    command.append(server.base + path)
    if lua_args:
        command += ["--", *lua_args]
    cpu_before = _cpu_seconds(server.proc.pid)
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    cpu = _cpu_seconds(server.proc.pid) - cpu_before
    if script:
        shutil.rmtree(script.parent)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    requests_done = int(re.search(r"(\d+) requests in", out).group(1))
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "cpu_us": cpu / max(requests_done, 1) * 1e6,
            "p50": _ms(re.search(r"50%\s+([\d.]+\w+)", out).group(1)),
            "p99": _ms(re.search(r"99%\s+([\d.]+\w+)", out).group(1)),
            "non2xx": int(errors.group(1)) if errors else 0}


def _ms(value: str) -> float:
    number, unit = re.match(r"([\d.]+)(\w+)", value).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def _report(args: argparse.Namespace, results: dict) -> None:
    print(f"\npromotion service benchmark: waitress, {args.threads} threads, "
          f"wrk -t2 -c{args.connections} -d{args.duration}s, medians of {args.rounds} "
          f"interleaved rounds, {args.images:,} images")
    print(f"{'endpoint':<16}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}"
          f"{'server CPU us/req':>19}")
    for name, r in results.items():
        print(f"{name:<16}{r['rps']:>10.0f}{r['p50']:>9.2f}{r['p99']:>9.2f}{r['non2xx']:>9.0f}"
              f"{r['cpu_us']:>19.0f}")
    gate = results["gate query"]["rps"] / results["bare constant"]["rps"]
    reg = results["register image"]["rps"] / results["bare insert"]["rps"]
    print(f"\ngate / bare constant throughput: {gate:.2f} (goal >= 0.50) "
          f"{'OK' if gate >= 0.5 else 'MISSED'}")
    p99 = results["gate query"]["p99"]
    print(f"gate p99: {p99:.2f} ms (goal < 25 ms) {'OK' if p99 < 25 else 'MISSED'}")
    print(f"registration / bare insert throughput: {reg:.2f} (goal >= 0.25) "
          f"{'OK' if reg >= 0.25 else 'MISSED'}")
    cpu = {name: r["cpu_us"] for name, r in results.items()}
    print("the same ratios from the server's CPU time per request (what throughput tends to on a "
          "machine where nothing else runs):")
    print(f"  gate: {cpu['bare constant'] / cpu['gate query']:.2f}, "
          f"registration: {cpu['bare insert'] / cpu['register image']:.2f}")
    load = os.getloadavg()[0]
    if load > (os.cpu_count() or 1):
        print(f"note: load average {load:.1f} on {os.cpu_count()} CPUs during the run: other work "
              "competed for the CPUs, so throughput and latency figures are lower than this "
              "machine gives alone")


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved rounds; figures are the medians")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    parser.add_argument("--releases", type=int, default=30,
                        help="promotions timed per release size (1 and 10 images)")
    parser.add_argument("--promotions-only", action="store_true",
                        help="only the 10-image vs 1-image promotion figure (no wrk)")
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(main())
