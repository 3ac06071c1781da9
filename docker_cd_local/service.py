"""The promotion service as a real process: migrated database, tokens per role, served.

Started the way an operator starts it (`promotion-service db upgrade`, `token create`,
`serve`), so end-to-end tests, the demo and benchmarks talk to what production runs.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from docker_cd_local.registry import free_port, wait_for_http

ROLES = ("ci", "approver", "release-manager", "admin")


def _command() -> list[str]:
    exe = shutil.which("promotion-service")
    code = "import sys; from promotion_service.cli import main; sys.exit(main())"
    return [exe] if exe else [sys.executable, "-c", code]


@dataclass
class PromotionService:
    """A running `promotion-service serve` on 127.0.0.1 with one token per role."""

    root: Path
    env: dict[str, str]
    port: int
    process: subprocess.Popen | None = None
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(cls, root: Path, *, policy: str | None = None,
              settings: Mapping[str, str] | None = None) -> PromotionService:
        """Migrate a fresh SQLite database in `root`, create tokens, serve; wait until ready."""
        root.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PROMOTION_")}
        env["PROMOTION_DATABASE_URL"] = f"sqlite:///{root / 'promotion.db'}"
        if policy is not None:
            (root / "policies.yml").write_text(policy)
            env["PROMOTION_POLICY_FILE"] = str(root / "policies.yml")
        env.update(settings or {})
        service = cls(root, env, free_port())
        service._cli("db", "upgrade")
        for role in ROLES:  # the ci token acts for every project, on purpose (tests share it)
            scope = ["--all-projects"] if role == "ci" else []
            service.tokens[role] = service._cli("token", "create", "--role", role,
                                                "--name", f"{role}-bot", *scope).strip()
        log = open(root / "service.log", "wb")  # noqa: SIM115 - lives as long as the process
        service.process = subprocess.Popen(
            [*_command(), "serve", "--bind", f"127.0.0.1:{service.port}"],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for_http(f"{service.url}/api/v1/openapi.json", timeout=30)
        except RuntimeError as e:
            service.stop()
            raise RuntimeError(f"{e}\n{service.log()[-3000:]}") from e
        return service

    def create_token(self, name: str, role: str, *, project: str | None = None) -> str:
        """Another person's token (its person is its name), as `token create` makes it."""
        scope = ["--project", project] if project else []
        self.tokens[name] = self._cli("token", "create", "--role", role, "--name", name,
                                      *scope).strip()
        return self.tokens[name]

    def _cli(self, *args: str) -> str:
        out = subprocess.run([*_command(), *args], env=self.env, capture_output=True, text=True,
                             timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"promotion-service {' '.join(args)} exited {out.returncode}: "
                               f"{out.stderr[-2000:]}")
        return out.stdout

    def log(self) -> str:
        path = self.root / "service.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def api(self, method: str, path: str, role: str = "admin", **kwargs: Any) -> Any:
        """Call /api/v1 as a token of `role`; return the JSON body, raise on an HTTP error."""
        response = requests.request(method, f"{self.url}/api/v1/{path.lstrip('/')}",
                                    headers={"Authorization": f"Bearer {self.tokens[role]}"},
                                    timeout=10, **kwargs)
        if response.status_code >= 400:
            raise AssertionError(f"{method} {path}: HTTP {response.status_code}: "
                                 f"{response.text[:1000]}")
        return response.json() if response.content else None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self.process = None
