"""The CI pipeline a step runs in, as one group of inputs."""

from __future__ import annotations

from dataclasses import dataclass

from steps.commands.inputs.ci import COMMIT_SHA, GIT_TAG, PIPELINE_ID, PIPELINE_URL, REF_SLUG
from steps.runtime.inputs import option


@dataclass(frozen=True)
class Pipeline:
    """The CI pipeline a step runs in, from GitLab's CI_* or Jenkins' variables."""

    commit_sha: str | None = COMMIT_SHA.field()
    ref_slug: str | None = REF_SLUG.field()
    git_tag: str | None = GIT_TAG.field()
    pipeline_id: str | None = PIPELINE_ID.field()
    pipeline_url: str | None = PIPELINE_URL.field()
    project_url: str | None = option("Web URL of the project's repository.",
                                     env=("CD_PROJECT_URL", "CI_PROJECT_URL", "GIT_URL"))
    project_path: str | None = option("Path of the project (group/name).",
                                      env=("CD_PROJECT_PATH", "CI_PROJECT_PATH", "JOB_NAME"))
