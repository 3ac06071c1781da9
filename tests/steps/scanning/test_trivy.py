"""Trivy's commands and the reading of its failures (pure functions, table-driven)."""

import pytest

from steps.runtime.errors import ExternalError, UsageError
from steps.scanning.trivy import TrivyOptions, config_command, explain_failure, image_command

IMAGE = "registry.example.com/team/app@sha256:" + "ab" * 32
REGISTRY = "registry.example.com"


def flags(argv):
    return " ".join(argv)


@pytest.mark.parametrize(
    ("opts", "scanners", "present", "absent"),
    [
        (TrivyOptions(), ("vuln", "secret"),
         ["--scanners vuln,secret", "--image-config-scanners secret", "--ignorefile ",
          "--severity UNKNOWN,LOW,MEDIUM,HIGH,CRITICAL", "--exit-code 0",
          "--ignore-unfixed=false", "--skip-version-check", "--disable-telemetry",
          "--list-all-pkgs"],
         ["--skip-db-update", "--offline-scan", "--cache-dir", "--image-src", "--insecure"]),
        (TrivyOptions(offline=True, cache_dir="/cache",
                      db_repository="registry.local/trivy-db:2", image_src=("remote",),
                      insecure=True, timeout=90),
         ("secret", "misconfig"),
         ["--skip-db-update --skip-java-db-update --skip-check-update", "--offline-scan",
          "--cache-dir /cache", "--db-repository registry.local/trivy-db:2",
          "--image-src remote", "--insecure", "--timeout 90s", "--scanners secret ",
          "--image-config-scanners secret,misconfig"],
         ["vuln"]),
    ],
    ids=["defaults", "air-gapped"],
)
def test_image_command_passes_the_offline_options_and_pins_what_reaches_the_report(
        opts, scanners, present, absent):
    argv = image_command(opts, IMAGE, scanners, "/tmp/out.json")
    text = flags(argv)
    assert argv[:2] == ["trivy", "image"] and argv[-1] == IMAGE
    for flag in present:
        assert flag in text
    for flag in absent:
        assert flag not in text


def test_dockerfile_checks_skip_the_bundle_download_when_air_gapped():
    assert "--skip-check-update" in config_command(TrivyOptions(offline=True), "d", "o")
    assert "--skip-check-update" not in config_command(TrivyOptions(), "d", "o")


FIRST_RUN = ("2026-11-26T16:58:02Z\tERROR\t[vulndb] The first run cannot skip downloading DB\n"
             "2026-11-26T16:58:02Z\tFATAL\tFatal error\trun error: init error: DB error: "
             "database error: --skip-db-update cannot be specified on the first run\n")
NO_DOWNLOAD = ("2026-11-26T16:58:03Z\tFATAL\tFatal error\trun error: init error: DB error: "
               "failed to download vulnerability DB: OCI repository error: 1 error occurred:\n"
               "\t* Get \"https://mirror.gcr.io/v2/\": dial tcp: no such host\n")
NOT_FOUND = ("2026-11-26T16:59:21Z\tFATAL\tFatal error\trun error: image scan error: scan "
             "error: unable to initialize a scan service: unable to initialize artifact: unable"
             " to initialize container image: unable to find the specified image \"{img}\" in "
             "[\"remote\"]: 1 error occurred:\n\t* remote error: GET http://r/v2/app/manifests/v1:"
             " {code}: denied\n")


@pytest.mark.parametrize(
    ("output", "error", "message"),
    [
        (FIRST_RUN, UsageError, "--offline: vulnerability scanning needs Trivy's "
                                "vulnerability DB and there is none in /c;"),
        (NO_DOWNLOAD, ExternalError, "trivy could not get it from mirror.gcr.io/aquasec/"
                                     "trivy-db:2: DB error: failed to download vulnerability "
                                     "DB: OCI repository error; Get \"https://mirror.gcr.io/v2/"
                                     "\": dial tcp: no such host. On an air-gapped runner"),
        (NOT_FOUND.format(img=IMAGE, code="UNAUTHORIZED"), UsageError,
         f"registry {REGISTRY} requires credentials and none were found for it (set "
         f"CI_REGISTRY_USER/CI_REGISTRY_PASSWORD for CI_REGISTRY, DOCKER_AUTH_CONFIG, or docker "
         f"login): trivy could not pull {IMAGE}: unable to find the specified image"),
        (NOT_FOUND.format(img=IMAGE, code="MANIFEST_UNKNOWN"), UsageError,
         f"IMAGE: {IMAGE} is not in registry {REGISTRY}"),
        (NOT_FOUND.format(img=IMAGE, code="TOOMANYREQUESTS"), ExternalError,
         f"trivy could not get the image {IMAGE} from registry {REGISTRY}: unable to find"),
        ("panic: runtime error\n", ExternalError,
         "trivy failed (exit 2): trivy exited with 2 and no error message"),
    ],
    ids=["no-db-skip-update", "db-download", "unauthorized", "missing", "rate-limited", "panic"],
)
def test_failures_become_the_steps_errors_with_the_fix(output, error, message):
    found = explain_failure(output, 2, TrivyOptions(cache_dir="/c"), IMAGE)
    assert type(found) is error
    assert message in found.message
