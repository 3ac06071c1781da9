"""Everything a docker-cd pipeline talks to, on this machine, for the end-to-end test, the demo
and the lead-time benchmark.

    registry         Docker Distribution on 127.0.0.1 (docker_cd_local.registry) asking for
                     a password on every request, pulls included; the jobs get it as GitLab
                     gives it, CI_REGISTRY_USER / CI_REGISTRY_PASSWORD
    GitLab API       the in-repo double (docker_cd_local.gitlab_double): records the pipelines the
                     promotion service triggers, and signs each run's CI/CD ID token (the
                     template's id_tokens: gitlab-ci-local does not mint them, so each run gets
                     one as CD_SERVICE_ID_TOKEN, with the claims GitLab would sign)
    promotion        `promotion-service serve` with its dispatcher thread, on SQLite
    runner           gitlab-ci-local in a git repository of examples/hello-app that includes
                     ci-templates/docker-cd.yml (docker_cd_local.pipelines.AppRepo): jobs in the
                     runner image (docker executor), or on this machine (shell executor)
    engine           the local Docker engine: build, scan and every environment's deploy
"""

from __future__ import annotations

import contextlib
import itertools
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from docker import errors as docker_errors

from docker_cd_local.gitlab_double import GitLabDouble, Pipeline
from docker_cd_local.pipelines import AppRepo, DockerExecutor
from docker_cd_local.registry import Registry, free_port, start_registry
from docker_cd_local.service import PromotionService
from steps.images.engine import docker_client
from steps.runtime.errors import ExternalError
from steps.targets import slug

PROJECT_PATH = "demo/hello-app"
GITLAB_PROJECT_ID = 42
TRIGGER_TOKEN = "glptt-e2e-trigger-token-0123456789"
GITLAB_TOKEN = "glpat-e2e-api-token-0123456789"
ENVIRONMENTS = ("test", "staging", "production")
AUDIENCE = "docker-cd"  # the template's default service_audience
GREETINGS = {"test": "Hello", "staging": "Bonjour", "production": "Welcome"}
PROJECT_LABEL = "io.docker-cd.project"
REGISTRY_USER = "gitlab-ci-token"
REGISTRY_PASSWORD = "glcbt-e2e-job-token-0123456789"


def policy(project_path: str) -> str:
    """test -> staging automatically once test is verified; production after one approval by
    someone other than who registered the image (four eyes)."""
    return f"""\
defaults:
  environments:
    - name: test
    - name: staging
      auto_promote: true
    - name: production
      required_approvals: 1
      four_eyes: true
projects:
  {project_path}:
    gitlab_id: {GITLAB_PROJECT_ID}
"""


@dataclass
class Stack:
    """The running parts and the app's repository; `stop()` removes what it created."""

    root: Path
    project: str  # CD_PROJECT: names and labels the app's containers
    ports: dict[str, int]
    app: str | Path = "hello-app"  # an example's name, or a team's own application directory
    project_path: str = PROJECT_PATH
    extra: dict[str, str] = field(default_factory=dict)  # the application's own variables
    registry: Registry | None = None
    gitlab: GitLabDouble | None = None
    service: PromotionService | None = None
    repo: AppRepo | None = None
    timings: dict[str, float] = field(default_factory=dict)
    id_tokens: list[str] = field(default_factory=list)  # every ID token a run was given
    _pipeline_ids: Iterator[int] = field(default_factory=lambda: itertools.count(5000))

    @classmethod
    def start(cls, root: Path, project: str | None = None,
              ports: dict[str, int] | None = None,
              executor: DockerExecutor | None = None, app: str | Path = "hello-app",
              variables: dict[str, str] | None = None) -> Stack:
        """Start registry, GitLab double and service; create the app's repository (its jobs
        run by `executor`, else on this machine). `app` is an example's name or a directory
        holding a team's application; `variables` are its own CI/CD variables."""
        name = Path(app).name if isinstance(app, Path) else app
        stack = cls(root, project or f"e2e-{uuid.uuid4().hex[:8]}",
                    ports or {env: free_port() for env in ENVIRONMENTS}, app,
                    PROJECT_PATH if app == "hello-app" else f"demo/{slug(name)}",
                    dict(variables or {}))
        try:
            stack.registry = start_registry(REGISTRY_USER, REGISTRY_PASSWORD)
            stack.gitlab = GitLabDouble(access_token=GITLAB_TOKEN).start()
            stack.gitlab.add_project(GITLAB_PROJECT_ID, stack.project_path,
                                     trigger_token=TRIGGER_TOKEN)
            stack.service = PromotionService.start(
                root / "service", policy=policy(stack.project_path), settings={
                "PROMOTION_GITLAB_URL": stack.gitlab.url,
                "PROMOTION_GITLAB_TOKEN": GITLAB_TOKEN,
                "PROMOTION_GITLAB_TRIGGER_TOKEN": TRIGGER_TOKEN,
                "PROMOTION_GITLAB_TRIGGER_REF": "main",
                "PROMOTION_DISPATCHER_THREAD": "1",
                "PROMOTION_DISPATCHER_POLL_SECONDS": "0.2",
                "PROMOTION_OIDC_ISSUER": stack.gitlab.url,
                "PROMOTION_OIDC_AUDIENCE": AUDIENCE,
            })
            stack.repo = AppRepo.create(root / slug(name), app, stack.project_path,
                                        executor=executor)
            stack.repo.variables = stack.variables()
        except BaseException:
            stack.stop()
            raise
        return stack

    # ------------------------------------------------------------------ what pipelines see

    @property
    def image_repository(self) -> str:
        assert self.registry is not None
        return f"{self.registry.host}/{self.project_path}"

    def url(self, environment: str) -> str:
        return f"http://127.0.0.1:{self.ports[environment]}/cgi-bin/hello"

    def variables(self) -> dict[str, str]:
        """What GitLab would give every job: predefined and project CI/CD variables."""
        assert self.registry is not None and self.service is not None
        variables = {
            "CI_REGISTRY": self.registry.host,
            "CI_REGISTRY_IMAGE": self.image_repository,
            "CI_REGISTRY_USER": REGISTRY_USER,
            "CI_REGISTRY_PASSWORD": REGISTRY_PASSWORD,
            "CI_PROJECT_ID": str(GITLAB_PROJECT_ID),
            "CI_PROJECT_PATH": self.project_path,
            "CI_DEFAULT_BRANCH": "main",
            "CD_SERVICE_URL": self.service.url,
            "CD_PROJECT": self.project,
            # No vulnerability database can be downloaded here: scan for secrets (for real),
            # with nothing asked of the network.
            "CD_SCAN_SCANNERS": "secret",
            "CD_SCAN_OFFLINE": "true",
        }
        if self.app == "hello-app":
            for env in ENVIRONMENTS:
                variables[f"HELLO_{env.upper()}_PORT"] = str(self.ports[env])
                variables[f"CD_{env.upper()}_URL"] = self.url(env)
        return {**variables, **self.extra}

    # ------------------------------------------------------------------ driving pipelines

    def push(self, change: str | None = None) -> str:
        """Commit (optionally after a one-line change to APP_VERSION); return the SHA."""
        assert self.repo is not None
        if change is not None:
            dockerfile = self.repo.path / "Dockerfile"
            text = re.sub(r"^ENV APP_VERSION=.*$", f"ENV APP_VERSION={change}",
                          dockerfile.read_text(), flags=re.M)
            dockerfile.write_text(text)
        return self.repo.commit(f"release {change or 'initial'}")

    def run(self, jobs: tuple[str, ...] = (), variables: dict[str, str] | None = None,
            manual: tuple[str, ...] = (), environment: str | None = None, user: str = "dev",
            pipeline_id: int | None = None, echo: bool = False) -> str:
        """Run a pipeline (or some of its jobs) as GitLab would: its jobs show the service an ID
        token GitLab signed for this pipeline, its ref and commit, its user and environment."""
        assert self.repo is not None and self.gitlab is not None
        variables = dict(variables or {})
        pipeline_id = pipeline_id or next(self._pipeline_ids)
        tag = variables.get("CI_COMMIT_TAG")
        ref = tag or variables.get("CI_COMMIT_REF_NAME") or "main"
        token = self.gitlab.mint_id_token(
            audience=AUDIENCE, project_path=self.project_path, project_id=GITLAB_PROJECT_ID,
            pipeline_id=pipeline_id, user_login=user, ref=ref,
            ref_type="tag" if tag else "branch", sha=self.repo.head, environment=environment,
            pipeline_source=variables.get("CI_PIPELINE_SOURCE", "push"))
        self.id_tokens.append(token)
        variables |= {"CD_SERVICE_ID_TOKEN": token, "CI_PIPELINE_ID": str(pipeline_id)}
        return self.repo.run(jobs, variables=variables, manual=manual, echo=echo)

    def run_branch_pipeline(self, echo: bool = False) -> str:
        """The default branch's pipeline after a push (its deploy jobs are test's)."""
        return self.run(variables={"CI_PIPELINE_SOURCE": "push"}, environment="test", echo=echo)

    def wait_for_pipeline(self, environment: str, after: int, timeout: float = 30) -> Pipeline:
        """The pipeline the service triggers for `environment` (the `after`+1-th one overall)."""
        assert self.gitlab is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pipelines = self.gitlab.pipelines
            if len(pipelines) > after:
                pipeline = pipelines[after]
                if pipeline.variables.get("CD_TARGET_ENVIRONMENT") != environment:
                    raise AssertionError(f"expected a {environment} pipeline, got {pipeline}")
                return pipeline
            time.sleep(0.1)
        raise AssertionError(f"the service triggered no {environment} pipeline within {timeout}s "
                             f"(pipelines: {self.gitlab.pipelines})\n"
                             f"{self.service.log()[-3000:] if self.service else ''}")

    def run_triggered(self, pipeline: Pipeline, jobs: tuple[str, ...] = (),
                      manual: tuple[str, ...] = (), user: str = "cd-bot",
                      echo: bool = False) -> str:
        """Run a triggered pipeline with exactly the variables the service sent (`user` plays
        its manual jobs; the trigger token's owner runs the rest)."""
        variables = {**pipeline.variables, "CI_PIPELINE_SOURCE": "trigger",
                     "CI_PIPELINE_URL": pipeline.web_url}
        return self.run(jobs, variables=variables, manual=manual, user=user,
                        environment=pipeline.variables["CD_TARGET_ENVIRONMENT"],
                        pipeline_id=pipeline.id, echo=echo)

    @contextmanager
    def checked_out(self, sha: str) -> Iterator[None]:
        """The repository at an older commit (a job of an old pipeline runs on its commit)."""
        assert self.repo is not None
        self.repo.checkout(sha)
        try:
            yield
        finally:
            self.repo.checkout("main")

    def approve(self, image: str, environment: str, comment: str = "QA passed") -> Any:
        """An approval through the service's API, as QA (an approver token) gives it."""
        assert self.service is not None
        repository, digest = image.rsplit("@", 1)
        return self.service.api("POST", "approvals", role="approver", json={
            "repository": repository, "digest": digest, "environment": environment,
            "decision": "approve", "comment": comment})

    # ------------------------------------------------------------------ looking at the world

    def answer(self, environment: str, timeout: float = 10) -> str:
        """What the environment serves at /cgi-bin/hello (waits for it to answer)."""
        deadline, last = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            try:
                response = requests.get(self.url(environment), timeout=2)
                if response.status_code == 200:
                    return response.text
                last = response.status_code
            except requests.ConnectionError as e:
                last = e
            time.sleep(0.1)
        raise AssertionError(f"{environment} does not answer at {self.url(environment)}: {last}")

    def containers(self, environment: str) -> list[Any]:
        """The app's running containers in one environment."""
        client = docker_client()
        return client.containers.list(filters={"label": [f"{PROJECT_LABEL}={self.project}",
                                                         f"io.docker-cd.environment={environment}",
                                                         "io.docker-cd.role=service"]})

    def registry_tags(self) -> list[str]:
        assert self.registry is not None
        url = f"{self.registry.url}/v2/{self.project_path}/tags/list"
        return sorted(requests.get(url, auth=self.registry.auth, timeout=5).json().get("tags")
                      or [])

    def registry_digest(self, tag: str) -> str:
        assert self.registry is not None
        response = requests.head(
            f"{self.registry.url}/v2/{self.project_path}/manifests/{tag}", timeout=5,
            auth=self.registry.auth,
            headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json, "
                               "application/vnd.oci.image.manifest.v1+json"})
        response.raise_for_status()
        return response.headers["Docker-Content-Digest"]

    def image_state(self, image: str) -> dict[str, Any]:
        """The service's view of an image: {environment: {...live, deployment, ...}}."""
        assert self.service is not None
        repository, digest = image.rsplit("@", 1)
        found = self.service.api("GET", "images", params={"repository": repository,
                                                          "digest": digest})
        assert len(found) == 1, f"{image} is registered {len(found)} times"
        detail = self.service.api("GET", f"images/{found[0]['id']}")
        return {"image": detail, **{e["environment"]: e for e in detail["environments"]}}

    def verified_at(self, image: str, environment: str) -> float:
        """When the service recorded a passed verification of the image there (epoch seconds)."""
        assert self.service is not None
        from datetime import UTC, datetime

        release_id = self.image_state(image)["image"]["release_id"]  # its one-member release
        entries = self.service.api("GET", "audit", params={
            "action": "verification.recorded", "subject_type": "release",
            "subject_id": str(release_id)})
        times = [datetime.fromisoformat(e["at"]).replace(tzinfo=UTC).timestamp()
                 for e in entries
                 if e["after"].get("environment") == environment and e["after"].get("passed")]
        if not times:
            raise AssertionError(f"{image} was never verified in {environment}")
        return min(times)

    def untag(self, image: str, delete: bool = False) -> None:
        """Take every name of the app's image off the engine (running containers keep it), or
        the image itself (`delete`: none may run it): the next deploy or rollback of it must
        pull, with the job's registry credentials."""
        client = docker_client()
        found = client.images.get(image)
        if delete:
            client.images.remove(found.id, force=True)
            return
        for name in (*found.attrs.get("RepoTags", []), *found.attrs.get("RepoDigests", [])):
            if name.startswith(self.image_repository):
                with contextlib.suppress(docker_errors.ImageNotFound):  # gone with its tag
                    client.images.remove(name, force=True)  # the image stays: it runs

    # ------------------------------------------------------------------ cleaning up

    def remove_app(self) -> None:
        """Remove the app's containers, networks and volumes, and the images built here."""
        try:
            client = docker_client()
        except ExternalError:  # no engine: nothing of the app can be left on it
            return
        label = {"label": f"{PROJECT_LABEL}={self.project}"}
        for container in client.containers.list(all=True, filters=label):
            container.remove(force=True)
        for network in client.networks.list(filters=label):
            network.remove()
        for volume in client.volumes.list(filters=label):
            volume.remove(force=True)
        if self.registry is not None:
            for image in client.images.list(name=self.image_repository):
                client.images.remove(image.id, force=True)

    def stop(self, keep_app: bool = False) -> None:
        if not keep_app:
            self.remove_app()
        for part in (self.service, self.gitlab, self.registry):
            if part is not None:
                part.stop()
        if not keep_app:
            shutil.rmtree(self.root, ignore_errors=True)
