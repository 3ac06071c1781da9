"""The CI system's variables, one input each (GitLab's CI_*, then Jenkins' names)."""

from __future__ import annotations

from steps.runtime.inputs import Input

COMMIT_SHA = Input("Commit the image is built from.",
                   env=("CD_COMMIT_SHA", "CI_COMMIT_SHA", "GIT_COMMIT"))
REF_SLUG = Input("Branch or tag name, slugged (lower case, [a-z0-9-], 63 chars).",
                 env=("CD_REF_SLUG", "CI_COMMIT_REF_SLUG", "BRANCH_NAME"))
GIT_TAG = Input("Git tag of the pipeline, if any (v1.2.3 gives semver tags).",
                env=("CD_GIT_TAG", "CI_COMMIT_TAG", "TAG_NAME"))
PIPELINE_ID = Input("CI pipeline (or Jenkins build) id.",
                    env=("CD_PIPELINE_ID", "CI_PIPELINE_ID", "BUILD_NUMBER"))
PIPELINE_URL = Input("CI pipeline (or Jenkins build) URL.",
                     env=("CD_PIPELINE_URL", "CI_PIPELINE_URL", "BUILD_URL"))
JOB_URL = Input("URL of this CI job, recorded by the promotion service.",
                env=("CD_JOB_URL", "CI_JOB_URL", "BUILD_URL"), metavar="URL")
COMMIT_TIME = Input("Commit time (ISO 8601).", env=("CD_COMMIT_TIME", "CI_COMMIT_TIMESTAMP"))
