"""A release's third-party member named by its plain tag in the template (issue 14): register
pins the tag's digest (asked of a registry that wants a password), records it in the promotion
service's release and hands it on in its dotenv as CD_IMAGE_<NAME>; deploy runs that digest
even after the vendor moved the tag to another image. On the docker target, with the real
engine, registry and promotion service.

Deploying a release, a service named by tag that the release does not pin is refused unless
CD_UNPINNED names it (then it runs its tag, with a warning); a member naming no service is
refused. Both before the engine is touched.
"""

from __future__ import annotations

import json
import uuid

import pytest
import requests

from steps import cli
from steps.template import deploy_files_hash
from tests.steps.deploy_sample import WEB_DOCKERFILE, remove_project
from tests.steps.registry_helpers import push_image
from tests.steps.targets.test_registry_auth import ci_variables, forget
from tests.support import free_port, read_dotenv

pytestmark = pytest.mark.docker

COMPOSE = """\
services:
  api:
    image: ${CD_IMAGE_API}
    stop_grace_period: 1s
  kv:
    image: KV
    stop_grace_period: 1s
"""
OVERLAY = ('services:\n  api:\n    ports: ["127.0.0.1:${API_PORT}:8080"]\n'
           '  kv:\n    ports: ["127.0.0.1:${KV_PORT}:8080"]\n')


@pytest.fixture(scope="module")
def shop(docker, images, auth_registry):
    """The project's api (by digest) and the vendor's kv 1.0, in the password-only registry;
    `move_tag()` points kv:1.0 at another image (kv 2). None left on the engine."""
    tag = uuid.uuid4().hex[:8]
    built = {}
    for name, text in (("api", "api 1\n"), ("kv1", "kv 1\n"), ("kv2", "kv 2\n")):
        built[name] = images.build(dockerfile=WEB_DOCKERFILE, files={"www/index.html": text},
                                   labels={"third-party-members-test": tag})
    project = f"shop-{tag}/app"
    api = f"{auth_registry.host}/{project}/api@" + push_image(
        docker, built["api"], auth_registry, f"{project}/api", "main")
    kv_repository = f"vendor-{tag}/kv"
    kv1 = push_image(docker, built["kv1"], auth_registry, kv_repository, "1.0")

    def move_tag() -> None:
        push_image(docker, built["kv2"], auth_registry, kv_repository, "1.0")

    yield {"project": project, "api": api, "kv": f"{auth_registry.host}/{kv_repository}:1.0",
           "kv1": f"{auth_registry.host}/{kv_repository}@{kv1}", "move_tag": move_tag}
    for local in built.values():
        forget(docker, local)


def _template(tmp_path, kv: str):
    directory = tmp_path / "deploy"
    directory.mkdir(exist_ok=True)
    (directory / "compose.yml").write_text(COMPOSE.replace("KV", kv))
    (directory / "compose.test.yml").write_text(OVERLAY)
    return directory


def _run(capsys, argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    code = cli.run(argv, env)
    captured = capsys.readouterr()
    return code, captured.err + captured.out


def test_a_third_party_member_by_plain_tag_deploys_the_digest_the_release_pinned(
        docker, auth_registry, shop, service, tmp_path, capsys):
    directory = _template(tmp_path, shop["kv"])
    registry = ci_variables(auth_registry)
    dotenv = tmp_path / "register.env"
    code, log = _run(capsys, ["register", "--dotenv", str(dotenv)], {
        "CD_SERVICE_URL": service.url, "CD_SERVICE_TOKEN": service.tokens["ci"],
        "CI_PROJECT_PATH": shop["project"], "CI_COMMIT_SHA": "c0ffee" * 6 + "abcd",
        "CI_COMMIT_REF_NAME": "main", "CI_PIPELINE_ID": "77", "CD_TEMPLATE_DIR": str(directory),
        "CD_IMAGE_API": shop["api"], **registry})
    assert code == 0, log
    written = read_dotenv(dotenv)
    assert written["CD_IMAGE_KV"] == shop["kv1"]  # the pin, for deploy-test in this pipeline
    release = service.api("GET", f"releases/{written['CD_RELEASE_ID']}")
    assert {(m["name"], f"{m['repository']}@{m['digest']}", m["built"])
            for m in release["members"]} == {("api", shop["api"], True),
                                             ("kv", shop["kv1"], False)}

    shop["move_tag"]()  # the vendor's 1.0 is another image now
    project = f"third-party-{uuid.uuid4().hex[:8]}"
    api_port, kv_port = free_port(), free_port()
    try:
        # a pipeline the service triggers carries every member: CD_IMAGE_<NAME>, CD_RELEASE_ID
        code, log = _run(capsys, ["deploy", "--environment", "test"], {
            "CD_PROJECT": project, "CD_TEMPLATE_DIR": str(directory), "CD_HEALTH_TIMEOUT": "60",
            "API_PORT": str(api_port), "KV_PORT": str(kv_port), **registry,
            "CD_RELEASE_ID": written["CD_RELEASE_ID"], "CD_IMAGE_API": shop["api"],
            "CD_IMAGE_KV": written["CD_IMAGE_KV"],
            "CD_RELEASE_TEMPLATE_HASH": release["template_hash"]})
        assert code == 0, log
        assert f"service kv: {shop['kv']} pinned to {shop['kv1']}" in log
        assert requests.get(f"http://127.0.0.1:{kv_port}/", timeout=5).text == "kv 1\n"
        listing = tmp_path / "releases.json"
        code, log = _run(capsys, ["releases", "--environment", "test", "--json", str(listing)],
                         {"CD_PROJECT": project})
        assert code == 0, log
        record = json.loads(listing.read_text())["releases"][0]
        assert (record["release_id"], record["members"]) == (
            int(written["CD_RELEASE_ID"]), {"api": shop["api"], "kv": shop["kv1"]})
    finally:
        remove_project(docker, project)


def _deploy_refused(capsys, directory, **env: str) -> tuple[int, str]:
    return _run(capsys, ["deploy", "--environment", "test"], {
        "CD_PROJECT": f"third-party-{uuid.uuid4().hex[:8]}", "CD_TEMPLATE_DIR": str(directory),
        "API_PORT": "1", "KV_PORT": "2", **env}
        | ({"CD_RELEASE_TEMPLATE_HASH": deploy_files_hash(directory)}
           if "CD_RELEASE_ID" in env else {}))


def test_a_service_by_tag_outside_the_release_is_refused_unless_cd_unpinned_names_it(
        shop, tmp_path, capsys):
    directory = _template(tmp_path, shop["kv"])
    code, log = _deploy_refused(capsys, directory, CD_RELEASE_ID="5", CD_IMAGE_API=shop["api"])
    assert code == 2, log
    assert f"service kv: {shop['kv']} is named by tag and release 5 does not pin it" in log
    assert "CD_UNPINNED=kv" in log

    code, log = _deploy_refused(capsys, directory, CD_IMAGE_API=shop["api"])  # no release
    assert f"service kv runs {shop['kv']} unpinned" in log
    assert "is named by tag and release" not in log


def test_a_member_naming_no_service_is_refused(shop, tmp_path, capsys):
    directory = _template(tmp_path, shop["kv"])
    code, log = _deploy_refused(capsys, directory, CD_RELEASE_ID="5", CD_IMAGE_API=shop["api"],
                                CD_IMAGE_KV=shop["kv1"], CD_IMAGE_CAHCE=shop["kv1"])
    assert code == 2, log
    assert "CD_IMAGE_CAHCE is a member of the release, but the template has no service cahce" \
        in log
    assert "service kv" not in log  # kv is pinned by its member
