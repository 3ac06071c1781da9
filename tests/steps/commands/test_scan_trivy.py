"""The scan step running the real trivy on images built here (local engine and registry).

Offline: trivy's cache lives in a temporary folder, no DB is downloaded, nothing leaves
127.0.0.1. Vulnerability findings need Trivy's DB, which cannot be had offline: their policy is
tested on recorded reports (test_scan.py); here trivy finds secrets and misconfigurations and
lists packages for the SBOM.
"""

import base64
import json
import os
from pathlib import Path

import pytest

from steps.cli import run
from tests.conftest import REGISTRY_PASSWORD, REGISTRY_USER
from tests.schemas import container_scanning_validator
from tests.support import free_port, read_dotenv

pytestmark = pytest.mark.docker

DATA = Path(__file__).parents[1] / "data"
SCHEMA = container_scanning_validator()
# Built at run time so no token-shaped string sits in the repository.
AWS_KEY_ID = "AKIA" + "QWERTYUIOPASDFGH"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYzEXAMPLEKEY"
GITHUB_PAT = "ghp_" + "aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789"
PYTHON_METADATA = "Metadata-Version: 2.1\nName: requests\nVersion: 2.31.0\nLicense: Apache-2.0\n"
SITE = "/usr/local/lib/python3.12/site-packages"


def private_key() -> str:
    body = base64.b64encode(os.urandom(600)).decode()
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return "-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(lines) + \
        "\n-----END RSA PRIVATE KEY-----\n"


@pytest.fixture(scope="module")
def offline(tmp_path_factory):
    """Options that keep trivy offline and fast, with its cache in a temporary folder."""
    cache = tmp_path_factory.mktemp("trivy-cache")
    return ["--offline", "--cache-dir", str(cache)]


@pytest.fixture(scope="module")
def clean_image(images):
    return images.build(files={"METADATA": PYTHON_METADATA},
                        dockerfile=f"COPY METADATA {SITE}/requests-2.31.0.dist-info/METADATA")


@pytest.fixture(scope="module")
def leaky_image(images):
    return images.build(
        files={"config.env": f"AWS_ACCESS_KEY_ID={AWS_KEY_ID}\n"
                             f"AWS_SECRET_ACCESS_KEY={AWS_SECRET}\n",
               "deploy_key": private_key()},
        dockerfile="COPY config.env /app/config.env\nCOPY deploy_key /root/.ssh/id_rsa\n"
                   f"ENV GITHUB_TOKEN={GITHUB_PAT}")


def test_a_clean_image_passes_with_an_sbom_and_an_empty_gitlab_report(workdir, capsys, offline,
                                                                      clean_image):
    code = run(["scan", clean_image, "--scanners", "secret", "--image-src", "docker", *offline,
                "--sbom", "sbom/bom.cdx.json", "--gitlab-report", "gl.json",
                "--dotenv", "scan.env"], {})
    err = capsys.readouterr().err
    assert code == 0, err
    assert f"The scan policy passed for {clean_image}." in err
    assert read_dotenv("scan.env")["CD_SCAN_RESULT"] == "passed"
    bom = json.loads(Path("sbom/bom.cdx.json").read_text())
    assert bom["bomFormat"] == "CycloneDX"
    assert bom["metadata"]["component"]["name"] == clean_image
    assert [(c["name"], c["version"], c["purl"]) for c in bom["components"]] == [
        ("requests", "2.31.0", "pkg:pypi/requests@2.31.0")]
    report = json.loads(Path("gl.json").read_text())
    SCHEMA.validate(report)
    assert report["vulnerabilities"] == []


def test_planted_keys_and_tokens_fail_on_secrets_and_never_reach_the_log(workdir, capsys,
                                                                         offline, leaky_image):
    code = run(["scan", leaky_image, "--scanners", "secret", "--image-src", "docker", *offline,
                "--severity-threshold", "NONE", "--gitlab-report", "gl.json",
                "--dotenv", "scan.env", "--json", "scan.json"], {})
    err = capsys.readouterr().err
    assert code == 1
    assert err.strip().splitlines()[-1] == f"Error: the scan policy failed for {leaky_image}"
    assert "secret(s) found in the image" in err
    report = json.loads(Path("gl.json").read_text())
    SCHEMA.validate(report)
    rules = {v["identifiers"][0]["value"] for v in report["vulnerabilities"]}
    assert {"aws-access-key-id", "private-key", "github-pat"} <= rules
    places = {v["location"]["dependency"]["package"]["name"] for v in report["vulnerabilities"]}
    assert {"/app/config.env:1", "/root/.ssh/id_rsa:2", "image config"} <= places
    assert int(read_dotenv("scan.env")["CD_SCAN_SECRETS"]) >= 3
    for leaked in (AWS_KEY_ID, AWS_SECRET, GITHUB_PAT, "BEGIN RSA PRIVATE KEY-----\n"):
        for text in (err, Path("gl.json").read_text(), Path("scan.json").read_text()):
            assert leaked not in text


def test_the_dockerfile_is_checked_for_misconfigurations(workdir, capsys, offline, clean_image):
    Path("build").mkdir()
    Path("build/app.Dockerfile").write_text("FROM scratch\nCOPY busybox /bin/busybox\n")
    Path(".docker-cd-ignore.yml").write_text(
        "ignore:\n  - id: DS-0026\n    reason: the orchestrator probes the app\n"
        "    path: build/*\n")
    code = run(["scan", clean_image, "--dockerfile", "build/app.Dockerfile", "--image-src",
                "docker", *offline, "--scanners", "secret,misconfig",
                "--gitlab-report", "gl.json"], {})
    err = capsys.readouterr().err
    assert code == 1
    assert "misconfig  DS-0002" in err and "build/app.Dockerfile" in err
    assert "DS-0026 build/app.Dockerfile: the orchestrator probes the app" in err
    report = json.loads(Path("gl.json").read_text())
    SCHEMA.validate(report)
    assert [v["identifiers"][0]["value"] for v in report["vulnerabilities"]] == ["DS-0002"]


def test_vulnerability_scanning_offline_without_a_db_is_exit_2(workdir, capsys, offline,
                                                               clean_image):
    code = run(["scan", clean_image, "--image-src", "docker", *offline], {})
    err = capsys.readouterr().err
    assert code == 2
    last = err.strip().splitlines()[-1]
    assert last.startswith("Error: --offline: vulnerability scanning needs Trivy's "
                           "vulnerability DB and there is none in ")
    assert "--scanners secret" in last


def test_vulnerability_db_that_cannot_be_downloaded_is_exit_3(workdir, capsys, tmp_path,
                                                             clean_image):
    mirror = f"127.0.0.1:{free_port()}/aquasec/trivy-db:2"  # nothing listens there
    code = run(["scan", clean_image, "--image-src", "docker", "--cache-dir",
                str(tmp_path / "cache"), "--db-repository", mirror], {})
    err = capsys.readouterr().err
    assert code == 3
    last = err.strip().splitlines()[-1]
    assert last.startswith("Error: vulnerability scanning needs Trivy's vulnerability DB and "
                           f"trivy could not get it from {mirror}")


def test_an_image_in_an_authenticated_registry_is_scanned_by_digest(workdir, capsys, offline,
                                                                   docker, auth_registry,
                                                                   clean_image):
    repository = f"{auth_registry.host}/team/scanned"
    docker.images.get(clean_image).tag(repository, "v1")
    try:
        docker.images.push(repository, "v1", auth_config=auth_registry.auth_config)
    finally:
        docker.images.remove(f"{repository}:v1")
    argv = ["scan", f"{repository}:v1", "--scanners", "secret", "--image-src", "remote",
            *offline, "--dotenv", "scan.env"]

    assert run(argv, {}) == 2
    assert f"registry {auth_registry.host} requires credentials and none were found" in \
        capsys.readouterr().err.strip().splitlines()[-1]

    code = run(argv, {"CD_REGISTRY": auth_registry.host, "CD_REGISTRY_USER": REGISTRY_USER,
                      "CD_REGISTRY_PASSWORD": REGISTRY_PASSWORD})
    err = capsys.readouterr().err
    assert code == 0, err
    assert REGISTRY_PASSWORD not in err
    scanned = read_dotenv("scan.env")["CD_SCAN_IMAGE"]
    assert scanned.startswith(f"{repository}@sha256:")


def test_an_image_missing_from_its_registry_is_exit_2(workdir, capsys, offline, registry):
    image = f"{registry.host}/team/never-pushed:v1"
    code = run(["scan", image, "--scanners", "secret", "--image-src", "remote", *offline], {})
    assert code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(f"Error: IMAGE: {image} is not in registry {registry.host}: unable "
                           "to find the specified image")
    assert "MANIFEST_UNKNOWN" in last
