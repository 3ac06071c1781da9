"""A throw-away PostgreSQL server for the tests (initdb + pg_ctl, unprivileged, 127.0.0.1)."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


def _binary(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                                                   reverse=True)), None)
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} is not installed: the promotion service tests "
                           "need initdb/pg_ctl/postgres (Debian package 'postgresql')")
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class PostgresServer:
    """A running server; `url(db)` names a database on it."""

    root: Path
    port: int
    as_user: list[str]

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def pause(self) -> None:
        """Stop the server, keeping its data (an outage); `resume` starts it again."""
        self._pg_ctl("-m", "fast", "stop")

    def resume(self) -> None:
        """Start the server again on the same port and data."""
        self._pg_ctl("-l", str(self.root / "server.log"), "-o",
                     f"-F -p {self.port} -k {self.root} -c listen_addresses=127.0.0.1", "start")

    def _pg_ctl(self, *args: str) -> None:
        subprocess.run([*self.as_user, _binary("pg_ctl"), "-D", str(self.root / "data"), "-w",
                        *args], capture_output=True, check=True, timeout=120)

    def stop(self) -> None:
        subprocess.run([*self.as_user, _binary("pg_ctl"), "-D", str(self.root / "data"),
                        "-m", "immediate", "stop"], capture_output=True, check=False)
        shutil.rmtree(self.root, ignore_errors=True)


def start_postgres() -> PostgresServer:
    """initdb into a temp dir and start on a free port; raise with the server log on failure."""
    root = Path(tempfile.mkdtemp(prefix="promotion-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        nobody = pwd.getpwnam("nobody")
        os.chown(root, nobody.pw_uid, nobody.pw_gid)
        as_user = ["runuser", "-u", "nobody", "--"]
    root.chmod(0o755)
    port = _free_port()
    log = root / "server.log"
    steps = [
        [_binary("initdb"), "-D", str(root / "data"), "-U", "postgres", "-A", "trust",
         "-E", "UTF8", "--no-sync"],
        [_binary("pg_ctl"), "-D", str(root / "data"), "-l", str(log), "-w", "-t", "60",
         "-o", f"-F -p {port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections=200",
         "start"],
    ]
    for command in steps:
        result = subprocess.run([*as_user, *command], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            detail = log.read_text() if log.exists() else ""
            shutil.rmtree(root, ignore_errors=True)
            raise RuntimeError(f"could not start PostgreSQL ({' '.join(command[:1])}): "
                               f"{result.stderr}{result.stdout}{detail}")
    return PostgresServer(root, port, as_user)
