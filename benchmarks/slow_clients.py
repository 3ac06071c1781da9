"""Slow clients against the promotion service: does the gate keep answering?

Opens --connections slow connections to the service on 127.0.0.1 (a third idle, a third
sending request headers one byte at a time, a third sending a body one byte at a time, each
byte every --drip seconds), then asks the gate --probes times, one request after another,
and reports the gate's latency (a request that does not answer within --probe-timeout counts
as that long, and as failed). The same run for each server named with --server, so the
figures compare servers measured under the same load:

  serve            `promotion-service serve`: waitress (the service's server)
  gunicorn-sync    gunicorn, 2 sync workers (what `serve` ran before)
  gunicorn-gthread gunicorn, 2 gthread workers x 8 threads

Goal (issue 13): the gate's p99 under 100 ms with 1,000 slow connections open. Bounded: each
server's probing lasts at most --budget seconds, then everything stops.

    python benchmarks/slow_clients.py [--connections 1000] [--probes 300]
                                      [--server serve --server gunicorn-sync ...]
"""

from __future__ import annotations

import argparse
import os
import resource
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from promotion_service import create_app, db  # noqa: E402
from promotion_service.db.schema import upgrade  # noqa: E402
from promotion_service.domain.actor import Actor  # noqa: E402
from promotion_service.services import images, tokens  # noqa: E402

REPO = "registry.local/bench/app"
DIGEST = "sha256:" + "ab" * 32
APP = "promotion_service:create_app()"
SERVERS = {
    "serve": [sys.executable, "-m", "promotion_service", "serve", "--bind", "{bind}"],
    "gunicorn-sync": [sys.executable, "-m", "gunicorn", "-k", "sync", "-w", "2",
                      "-b", "{bind}", APP],
    "gunicorn-gthread": [sys.executable, "-m", "gunicorn", "-k", "gthread", "-w", "2",
                         "--threads", "8", "-b", "{bind}", APP],
}


def main() -> int:
    args = _args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = args.connections * 2 + 256  # ours, and the server's (it inherits the limit)
    if hard < wanted:
        print(f"Error: open files limit {hard} < {wanted}: ulimit -n {wanted}", file=sys.stderr)
        return 2
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    work = Path(tempfile.mkdtemp(prefix="promotion-slow-"))
    try:
        url = f"sqlite:///{work}/service.db"
        token = _seed(url)
        results = {name: _measure(args, name, url, token) for name in args.server}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _report(args, results)
    return 0


def _seed(url: str) -> str:
    upgrade(url)
    app = create_app({"DATABASE_URL": url})
    actor = Actor.system("benchmark")
    with db.session_for(app) as session:
        token = tokens.create(session, actor, name="bench", role="ci")[1]
    with db.session_for(app) as session:
        images.register(session, actor, app.extensions["promotion_policies"],
                        project="bench/app", repository=REPO, digest=DIGEST)
    db.engine_of(app).dispose()
    return token


class SlowClients:
    """Connections that never finish a request: idle, or dripping headers or a body."""

    def __init__(self, port: int, count: int, drip: float) -> None:
        self.port, self.count, self.drip = port, count, drip
        self.sockets: list[tuple[socket.socket, bytes]] = []
        self.stop = threading.Event()

    def __enter__(self) -> SlowClients:
        head = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 4000
        body = (b"POST /api/v1/images HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nContent-Length: 4000\r\n\r\n" + b" " * 4000)
        for n in range(self.count):
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", self.port))
            kind = n % 3  # 0: idle; 1: headers byte by byte; 2: a body byte by byte
            script = b"" if kind == 0 else head if kind == 1 else body
            self.sockets.append((sock, script))
        time.sleep(1)  # the connects complete
        self.thread = threading.Thread(target=self._drip, daemon=True)
        self.thread.start()
        return self

    def _drip(self) -> None:
        offsets = [0] * len(self.sockets)
        while not self.stop.wait(self.drip):
            for n, (sock, script) in enumerate(self.sockets):
                offset = offsets[n]
                if offset >= len(script):
                    continue
                end = offset + 1  # one byte per drip; a body's headers go at once
                if offset == 0 and script.startswith(b"POST"):
                    end = script.index(b"\r\n\r\n") + 4
                try:
                    offsets[n] += sock.send(script[offset:end])
                except OSError:
                    offsets[n] = len(script)  # the server closed it

    def open_count(self) -> int:
        """How many of our connections the server has not closed."""
        selector = selectors.DefaultSelector()
        for sock, _ in self.sockets:
            selector.register(sock, selectors.EVENT_READ)
        closed = set()
        for key, _ in selector.select(0):
            try:
                if key.fileobj.recv(1, socket.MSG_PEEK) == b"":
                    closed.add(key.fileobj)
            except OSError:
                closed.add(key.fileobj)
        selector.close()
        return len(self.sockets) - len(closed)

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(5)
        for sock, _ in self.sockets:
            sock.close()


def _measure(args: argparse.Namespace, name: str, url: str, token: str) -> dict:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [part.replace("{bind}", f"127.0.0.1:{port}") for part in SERVERS[name]]
    env = dict(os.environ, PROMOTION_DATABASE_URL=url, PYTHONPATH=str(ROOT))
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    gate = f"{base}/api/v1/gate"
    params = {"repository": REPO, "digest": DIGEST, "environment": "test"}
    auth = {"Authorization": f"Bearer {token}"}
    try:
        _wait(base)
        idle = [_probe(gate, params, auth, args.probe_timeout) for _ in range(20)]
        with SlowClients(port, args.connections, args.drip) as slow:
            time.sleep(args.settle)
            deadline = time.monotonic() + args.budget
            latencies = []
            while len(latencies) < args.probes and time.monotonic() < deadline:
                latencies.append(_probe(gate, params, auth, args.probe_timeout))
            still_open = slow.open_count()
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)
    failed = sum(1 for ok, _ in latencies if not ok)
    times = sorted(ms for _, ms in latencies)
    return {"idle_p50": statistics.median(ms for _, ms in idle), "p50": statistics.median(times),
            "p99": times[max(0, int(len(times) * 0.99) - 1)], "max": times[-1],
            "failed": failed, "probes": len(times), "open": still_open}


def _probe(url: str, params: dict, headers: dict, timeout: float) -> tuple[bool, float]:
    started = time.perf_counter()
    try:
        ok = requests.get(url, params=params, headers=headers, timeout=timeout).status_code == 200
    except requests.RequestException:
        ok = False
    return ok, min(time.perf_counter() - started, timeout) * 1000


def _wait(base: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{base}/ready", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the server on {base} did not become ready")


def _report(args: argparse.Namespace, results: dict[str, dict]) -> None:
    print(f"\nslow clients: {args.connections} connections (idle / dripping headers / dripping "
          f"a body, a byte every {args.drip}s), {args.probes} gate requests one after another, "
          f"timeout {args.probe_timeout}s")
    print(f"{'server':<18}{'alone p50':>10}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
          f"{'failed':>12}{'slow still open':>17}")
    for name, r in results.items():
        failed = f"{r['failed']}/{r['probes']}"
        print(f"{name:<18}{r['idle_p50']:>10.1f}{r['p50']:>9.1f}{r['p99']:>9.1f}{r['max']:>9.0f}"
              f"{failed:>12}{r['open']:>17}")
    if "serve" in results:
        p99 = results["serve"]["p99"]
        ok = p99 < 100 and not results["serve"]["failed"]
        print(f"\nserve: gate p99 {p99:.1f} ms with {args.connections} slow connections open "
              f"(goal < 100 ms, none failed) {'OK' if ok else 'MISSED'}")


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--probes", type=int, default=300)
    parser.add_argument("--probe-timeout", type=float, default=5.0)
    parser.add_argument("--budget", type=float, default=60.0,
                        help="seconds of probing per server at most (a starved one stops early)")
    parser.add_argument("--drip", type=float, default=1.0, help="seconds between bytes")
    parser.add_argument("--settle", type=float, default=3.0,
                        help="seconds between opening the slow connections and the first probe")
    parser.add_argument("--server", action="append", choices=sorted(SERVERS),
                        help="servers to measure (repeat); default: all")
    args = parser.parse_args()
    args.server = args.server or ["serve", "gunicorn-gthread", "gunicorn-sync"]
    return args


if __name__ == "__main__":
    sys.exit(main())
