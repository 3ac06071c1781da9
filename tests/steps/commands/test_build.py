"""`docker-cd build` on the real engine: provenance labels, build args, target stage, cache from
the branch's earlier image, a failing Dockerfile, and --push naming the image by digest."""

import contextlib
import datetime
import re
import shutil
import uuid

import pytest
from docker import errors as docker_errors

from steps.cli import run
from steps.commands.build import Settings, labels
from steps.commands.inputs.pipeline import Pipeline
from tests.steps.registry_helpers import manifest_digest
from tests.support import BUSYBOX, TEST_LABEL, read_dotenv

pytestmark = pytest.mark.docker

SHA = "0123456789abcdef0123456789abcdef01234567"
PREAMBLE = ('FROM scratch AS base\nCOPY busybox /bin/busybox\n'
            'RUN ["/bin/busybox", "--install", "-s", "/bin"]\n')


@pytest.fixture
def build(docker, tmp_path, capsys):
    """Run `docker-cd build` in a fresh context; remove the images it tagged afterwards."""
    made = []

    def run_build(dockerfile, argv=(), env=None, files=None):
        context = tmp_path / f"ctx-{uuid.uuid4().hex[:6]}"
        context.mkdir()
        shutil.copy(BUSYBOX, context / "busybox")
        (context / "Dockerfile").write_text(PREAMBLE + dockerfile)
        for name, text in (files or {}).items():
            (context / name).write_text(text)
        out_file = tmp_path / "out.env"
        out_file.unlink(missing_ok=True)
        code = run(["build", "--context", str(context), "--label", f"{TEST_LABEL}=1",
                    "--dotenv", str(out_file), *argv], env or {})
        err = capsys.readouterr().err
        out = read_dotenv(out_file)
        if out:
            repository = out["CD_IMAGE_REPOSITORY"]
            made.extend(f"{repository}:{t}" for t in out["CD_IMAGE_TAGS"].split(","))
        return code, err, out

    run_build.made = made
    yield run_build
    for ref in made:
        with contextlib.suppress(docker_errors.ImageNotFound):
            docker.images.remove(ref, force=True)


def repository(registry):
    return f"{registry.host}/build/{uuid.uuid4().hex[:8]}"


def output_of(docker, image, *command):
    return docker.containers.run(image, list(command), remove=True,
                                 labels={TEST_LABEL: "1"}).decode().strip()


def test_labels_and_build_args(build, docker, registry):
    repo = repository(registry)
    env = {"CI_REGISTRY_IMAGE": repo, "CI_COMMIT_SHA": SHA, "CI_COMMIT_REF_SLUG": "main",
           "CI_PROJECT_URL": "https://gitlab.example.com/group/shop",
           "CI_PROJECT_TITLE": "Shop", "CI_PIPELINE_ID": "4242",
           "CI_PIPELINE_URL": "https://gitlab.example.com/group/shop/-/pipelines/4242"}
    code, err, out = build('ARG GREETING\nRUN echo "$GREETING" > /greeting\n',
                           ["--build-arg", "GREETING=hello from CI", "--label", "team=web"],
                           env)
    assert code == 0, err
    assert out == {"CD_IMAGE_REPOSITORY": repo, "CD_IMAGE_TAGS": f"{SHA},main"}
    image = f"{repo}:{SHA}"
    found = docker.images.get(image).labels
    assert found["org.opencontainers.image.revision"] == SHA
    assert found["org.opencontainers.image.source"] == "https://gitlab.example.com/group/shop"
    assert found["org.opencontainers.image.url"] == "https://gitlab.example.com/group/shop"
    assert found["org.opencontainers.image.title"] == "Shop"
    assert found["org.opencontainers.image.version"] == SHA[:8]
    created = datetime.datetime.fromisoformat(found["org.opencontainers.image.created"])
    assert abs(datetime.datetime.now(datetime.UTC) - created) < datetime.timedelta(minutes=5)
    assert not [k for k in found if "pipeline" in k]  # the service records the pipeline
    assert found["team"] == "web"
    assert output_of(docker, image, "cat", "/greeting") == "hello from CI"
    assert docker.images.get(f"{repo}:main").id == docker.images.get(image).id
    assert "Step 5/" in err and "no cache from" in err  # the branch has no earlier image
    # every label in one build step, not one step (a container) per label
    assert len(re.findall(r"^Step \d+/\d+ : LABEL ", err, re.M)) == 1


def test_labels_are_the_commits_whichever_pipeline_builds_it(workdir):
    (workdir / "Dockerfile").write_text("FROM scratch\n")
    settings = Settings(context=str(workdir), pipeline=Pipeline(
        commit_sha=SHA, git_tag="v1.4.0", project_path="group/shop"))
    found = labels(settings, datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC))
    # a git tag is added to a commit after its image was built: it is not in the image
    assert found["org.opencontainers.image.version"] == SHA[:8]
    assert found["org.opencontainers.image.title"] == "shop"
    assert found["org.opencontainers.image.created"] == "2026-01-02T03:04:05Z"
    assert "org.opencontainers.image.source" not in found  # unknown values are left out


def test_target_stage(build, docker, registry):
    repo = repository(registry)
    code, err, _ = build("RUN echo base > /base\nFROM base AS final\nRUN echo final > /final\n",
                         ["--target", "base", "--tag", "t"], {"CD_IMAGE_REPOSITORY": repo})
    assert code == 0, err
    assert output_of(docker, f"{repo}:t", "sh", "-c",
                     "cat /base; test -e /final || echo no-final") == "base\nno-final"
    assert docker.images.get(f"{repo}:t").labels[TEST_LABEL] == "1"  # on the target stage


def test_failing_dockerfile_shows_the_instruction_and_its_output(build, registry):
    code, err, out = build('RUN echo "checking the widget"; echo "widget broken" >&2; exit 7\n'
                           "RUN echo never\n",
                           ["--tag", "t"], {"CD_IMAGE_REPOSITORY": repository(registry)})
    assert code == 1
    assert out == {}
    failing = 'RUN echo "checking the widget"; echo "widget broken" >&2; exit 7'
    assert re.search(rf"Error: docker build failed at Step 4/\d : {re.escape(failing)}\n", err)
    summary = err.split("\n  - ", 1)[1]  # after the streamed log: the failing step's output
    for line in ("checking the widget", "widget broken", "returned a non-zero code: 7"):
        assert line in summary
    assert "Step 5/" not in err  # nothing ran after the failure


def test_dockerfile_syntax_error_exit_1(build, registry):
    code, err, _ = build("NOT_AN_INSTRUCTION x\n", ["--tag", "t"],
                         {"CD_IMAGE_REPOSITORY": repository(registry)})
    assert code == 1
    assert "unknown instruction" in err.lower()


def test_push_names_the_image_by_digest_and_cache_from_the_branch(build, docker, registry):
    repo = repository(registry)
    env = {"CI_REGISTRY_IMAGE": repo, "CI_COMMIT_SHA": SHA, "CI_COMMIT_REF_SLUG": "feature-x"}
    unique = {"unique.txt": uuid.uuid4().hex}
    code, err, out = build("COPY unique.txt /unique.txt\n", ["--push"], env, unique)
    assert code == 0, err
    name = repo.split("/", 1)[1]
    digest = manifest_digest(registry, name, SHA)
    assert manifest_digest(registry, name, "feature-x") == digest
    assert out == {"CD_IMAGE": f"{repo}@{digest}", "CD_IMAGE_REPOSITORY": repo,
                   "CD_IMAGE_DIGEST": digest, "CD_IMAGE_TAGS": f"{SHA},feature-x"}
    for tag in (SHA, "feature-x"):
        docker.images.remove(f"{repo}:{tag}", force=True)
    build.made.append(f"{repo}@{digest}")  # the cache image the next build pulls
    # the next pipeline of the branch: no local layers, the pushed image is the cache
    code, err, _ = build("COPY unique.txt /unique.txt\n", [], {**env, "CI_COMMIT_SHA": "1" * 40},
                         unique)
    assert code == 0, err
    assert f"cache from {repo}:feature-x" in err
    after_copy = err.split("COPY unique.txt /unique.txt", 1)[1].splitlines()[1]
    assert "Using cache" in after_copy


@pytest.mark.parametrize(("argv", "message"), [
    (["--file", "Nope.dockerfile"], "--file (from --file): no Dockerfile at"),
    (["--tag", "bad tag"], "--tag (from --tag): 'bad tag' is not a valid tag"),
    (["--cache-from", "UPPER/case"], "--cache-from (from --cache-from)"),
])
def test_usage_errors_exit_2(build, registry, argv, message):
    code, err, _ = build("", ["--image-repository", repository(registry), "--tag", "t", *argv])
    assert code == 2
    assert message in err
