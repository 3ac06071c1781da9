"""A GitLab project on this machine: an application's git repository run by gitlab-ci-local.

The end-to-end test, the rules tests, scripts/demo.sh and benchmarks/lead_time.py all drive
pipelines through this module, so they run the same thing. gitlab-ci-local stands in for GitLab
Runner: with the shell executor the jobs run on this machine; with the docker executor
(`DockerExecutor`) each job runs in the template's runner image, as on GitLab, on the host's
network (the registry, the service and the environments listen on 127.0.0.1) with the
engine's socket. The promotion service and the GitLab API double are started by the callers
(see docker_cd_local/stack.py).
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "ci-templates" / "docker-cd.yml"
LOCAL_TEMPLATE = "ci-templates/docker-cd.yml"  # where the repository gets a copy of it
EXAMPLES = ROOT / "examples"
BUSYBOX = Path("/bin/busybox")
GITLAB_CI_LOCAL = shutil.which("gitlab-ci-local") or "gitlab-ci-local"

# Predefined variables the tests set on purpose to play a kind of pipeline.
_PLAYED = "CI_PIPELINE_SOURCE,CI_COMMIT_BRANCH,CI_COMMIT_TAG,CI_DEFAULT_BRANCH,CI_REGISTRY," \
          "CI_REGISTRY_IMAGE,CI_PROJECT_PATH,CI_PIPELINE_ID,CI_PIPELINE_URL,CI_PROJECT_URL"

# The variables each kind of pipeline has on GitLab (beyond the branch the repo is on).
PIPELINES: dict[str, dict[str, str]] = {
    "default-branch": {"CI_PIPELINE_SOURCE": "push"},
    "merge-request": {"CI_PIPELINE_SOURCE": "merge_request_event", "CI_COMMIT_BRANCH": "",
                      "CI_MERGE_REQUEST_IID": "7"},
    "feature-branch": {"CI_PIPELINE_SOURCE": "push", "CI_COMMIT_BRANCH": "feature/x"},
    "tag": {"CI_PIPELINE_SOURCE": "push", "CI_COMMIT_BRANCH": "", "CI_COMMIT_TAG": "v1.2.3"},
}


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "docker-cd", "GIT_AUTHOR_EMAIL": "cd@example.com",
           "GIT_COMMITTER_NAME": "docker-cd", "GIT_COMMITTER_EMAIL": "cd@example.com"}
    out = subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True,
                         text=True)
    return out.stdout.strip()


def include_local_template(path: Path, inputs: Mapping[str, str]) -> None:
    """Make a .gitlab-ci.yml include the repository's copy of the template (gitlab-ci-local
    cannot fetch `project:` includes), keeping its inputs and adding `inputs`; a project without
    one gets one that only includes the template."""
    import yaml

    config = yaml.safe_load(path.read_text()) if path.is_file() else None
    config = config if isinstance(config, dict) else {}
    includes = config.get("include") or []
    includes = includes if isinstance(includes, list) else [includes]
    ours = [i for i in includes if isinstance(i, dict)
            and str(i.get("file") or i.get("local") or "").endswith("docker-cd.yml")]
    if len(ours) == 1 and ours[0].get("local") == LOCAL_TEMPLATE and not inputs:
        return  # already as wanted: the file stays as written, comments and all
    kept = (ours[0].get("inputs") or {}) if ours else {}
    template: dict = {"local": LOCAL_TEMPLATE}
    if kept or inputs:
        template["inputs"] = {**kept, **inputs}
    config["include"] = [template, *(i for i in includes if not any(i is o for o in ours))]
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def _busybox_contexts(app: Path) -> list[Path]:
    """The build contexts of `app` whose Dockerfile copies in a busybox they lack."""
    if not BUSYBOX.exists():
        return []
    return sorted({dockerfile.parent for dockerfile in app.rglob("Dockerfile")
                   if ".gitlab-ci-local" not in dockerfile.parts
                   and "COPY busybox " in dockerfile.read_text()
                   and not (dockerfile.parent / "busybox").exists()})


@dataclass
class PipelineFailed(Exception):
    """A gitlab-ci-local run that ended non-zero; carries its whole log."""

    jobs: tuple[str, ...]
    returncode: int
    log: str

    def __str__(self) -> str:
        tail = self.log[-6000:]
        return f"gitlab-ci-local {' '.join(self.jobs)} exited {self.returncode}:\n{tail}"


@dataclass(frozen=True)
class DockerExecutor:
    """Jobs in containers of the runner image: `image` (the template's runner_image input),
    `helper` for gitlab-ci-local's file copies (sh, bash, rsync)."""

    image: str
    helper: str
    socket: str = "/var/run/docker.sock"

    def argv(self) -> list[str]:
        return ["--network", "host", "--volume", f"{self.socket}:/var/run/docker.sock",
                "--helper-image", self.helper, "--pull-policy", "if-not-present"]


@dataclass
class AppRepo:
    """A git repository holding an application and the template, as a team's project would."""

    path: Path
    project_path: str
    variables: dict[str, str] = field(default_factory=dict)
    executor: DockerExecutor | None = None  # None: the shell executor, jobs on this machine

    @classmethod
    def create(cls, dest: Path, app: str | Path = "hello-app",
               project_path: str = "demo/hello-app",
               executor: DockerExecutor | None = None) -> AppRepo:
        """Copy an application (examples/<app>, or a directory) and the template into `dest`,
        make its .gitlab-ci.yml include that copy, commit, and point origin at GitLab."""
        source = Path(app) if isinstance(app, Path) else EXAMPLES / app
        shutil.copytree(source, dest, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns(".git", ".gitlab-ci-local", "busybox"))
        (dest / "ci-templates").mkdir(exist_ok=True)
        shutil.copy(TEMPLATE, dest / LOCAL_TEMPLATE)
        include_local_template(dest / ".gitlab-ci.yml",
                               {"runner_image": executor.image} if executor else {})
        _git(dest, "init", "-q", "-b", "main")
        _git(dest, "remote", "add", "origin", f"git@gitlab.example.com:{project_path}.git")
        for context in _busybox_contexts(dest):
            # the examples copy it into their images (FROM scratch); a job gets tracked files
            shutil.copy(BUSYBOX, context / "busybox")
            _git(dest, "add", "--force", str((context / "busybox").relative_to(dest)))
        repo = cls(dest, project_path, executor=executor)
        repo.commit("initial import")
        return repo

    def commit(self, message: str) -> str:
        """Commit everything; return the new SHA (origin/main follows, as after a push)."""
        _git(self.path, "add", "-A")
        _git(self.path, "commit", "-q", "--allow-empty", "-m", message)
        sha = _git(self.path, "rev-parse", "HEAD")
        _git(self.path, "update-ref", "refs/remotes/origin/main", sha)
        _git(self.path, "symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/main")
        return sha

    def checkout(self, ref: str) -> None:
        """Put the working tree at a commit (or back on a branch), as a runner checks one out:
        what earlier runs left in the tree (their artifacts) does not come along."""
        _git(self.path, "checkout", "-q", "--force", ref)

    @property
    def head(self) -> str:
        return _git(self.path, "rev-parse", "HEAD")

    # ------------------------------------------------------------------ gitlab-ci-local

    def _argv(self, variables: Mapping[str, str]) -> list[str]:
        argv = [GITLAB_CI_LOCAL]
        for key, value in {**self.variables, **variables}.items():
            if value == "":
                argv += ["--unset-variable", key]
            else:
                argv += ["--variable", f"{key}={value}"]
        return argv

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CI_", "CD_"))}
        env["GCL_IGNORE_PREDEFINED_VARS"] = _PLAYED
        env["FORCE_COLOR"] = "0"
        return env

    def jobs(self, variables: Mapping[str, str] | None = None) -> dict[str, str]:
        """The jobs a pipeline with these variables holds: name -> when (never-jobs left out)."""
        out = subprocess.run([*self._argv(variables or {}), "--list-csv"], cwd=self.path,
                             env=self._env(), capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise PipelineFailed(("--list-csv",), out.returncode, out.stdout + out.stderr)
        text = out.stdout[out.stdout.find("name;"):]  # after any warning lines
        rows = csv.DictReader(io.StringIO(text), delimiter=";")
        return {row["name"]: row["when"] for row in rows}

    def preview(self) -> str:
        """The configuration as gitlab-ci-local resolves it (includes, inputs, extends)."""
        out = subprocess.run([GITLAB_CI_LOCAL, "--preview"], cwd=self.path, env=self._env(),
                             capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise PipelineFailed(("--preview",), out.returncode, out.stdout + out.stderr)
        return out.stdout

    def run(self, jobs: Iterable[str] = (), variables: Mapping[str, str] | None = None,
            manual: Iterable[str] = (), timeout: float = 300, echo: bool = False) -> str:
        """Run a pipeline (no `jobs`) or the given jobs; return the log, raise PipelineFailed."""
        jobs = tuple(jobs)
        executor = self.executor.argv() if self.executor else ["--force-shell-executor"]
        argv = [*self._argv(variables or {}), *executor, "--no-color", "--timestamps", *jobs]
        for job in manual:
            argv += ["--manual", job]
        started = time.monotonic()
        proc = subprocess.Popen(argv, cwd=self.path, env=self._env(), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        lines = []
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if echo:
                print(line, end="", flush=True)
        proc.wait(max(1.0, timeout - (time.monotonic() - started)))
        log = "".join(lines)
        if proc.returncode != 0:
            raise PipelineFailed(jobs, proc.returncode, log)
        return log

    def dotenv(self, job: str, name: str) -> dict[str, str]:
        """The dotenv report a job of the last run exported (KEY=VALUE lines)."""
        for path in (self.path / ".gitlab-ci-local" / "artifacts" / job).rglob(name):
            return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
        raise FileNotFoundError(f"job {job} exported no {name}")
