"""Schemathesis against the real service, as every role and without a token: no server error
and no answer the OpenAPI document does not describe (every check schemathesis has).

The requests counted and their statuses come from the service's own access log, so a 5xx
cannot hide; FUZZ_EXAMPLES sets schemathesis' examples per operation (the default keeps the
whole run at a few minutes and over 5,000 requests).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from docker_cd_local.service import ROLES, PromotionService

HERE = Path(__file__).resolve().parent
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "10"))
MIN_REQUESTS = 5000  # across the five identities
SEED = os.environ.get("FUZZ_SEED", "20261130")
ACCESS = re.compile(r'promotion_service\.access: \S+ "(\w+) (\S+)" (\d{3}) ')


def schemathesis() -> list[str]:
    found = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or shutil.which(
        "schemathesis")
    if found is None:
        raise RuntimeError("schemathesis is not installed: pip install -e '.[test]'")
    return [found]


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """The service on SQLite, with a little of everything in it for the fuzzer to find."""
    service = PromotionService.start(tmp_path_factory.mktemp("contract") / "svc")
    try:
        repository = "registry.example.com/group/app"
        for n in range(1, 4):
            ref = {"repository": repository, "digest": "sha256:" + f"{n:064x}"}
            service.api("POST", "images", role="ci", json=ref | {"project": "group/app"})
            service.api("POST", "scans", role="ci", json=ref | {"counts": {"high": 0}})
            service.api("POST", "deployments", role="ci",
                        json=ref | {"environment": "test", "state": "succeeded"})
            service.api("POST", "verifications", role="ci",
                        json=ref | {"environment": "test", "passed": True})
            service.api("POST", "approvals", role="approver",
                        json=ref | {"environment": "staging"})
        yield service
    finally:
        service.stop()


def fuzz(service: PromotionService, identity: str | None, report: Path) -> subprocess.Popen:
    command = [*schemathesis(), "--config-file", str(HERE / "schemathesis.toml"), "run",
               f"{service.url}/api/v1/openapi.json", "--checks", "all",
               "--max-examples", str(EXAMPLES), "--seed", SEED, "--workers", "1",
               "--request-timeout", "30", "--report", "json", "--report-json-path", str(report),
               "--no-color", "--suppress-health-check", "all"]
    if identity is not None:
        command += ["--header", f"Authorization: Bearer {service.tokens[identity]}"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


@pytest.mark.timeout(2400)
def test_no_server_error_and_no_contract_violation_for_any_identity(service, tmp_path):
    log_before = len(service.log().splitlines())
    identities = [None, *ROLES]
    runs = {identity: fuzz(service, identity, tmp_path / f"{identity or 'anonymous'}.json")
            for identity in identities}  # one process each: they share the two cores
    outputs = {identity: run.communicate(timeout=2300)[0] for identity, run in runs.items()}
    requests_seen = [ACCESS.search(line) for line in service.log().splitlines()[log_before:]]
    statuses = [int(m.group(3)) for m in requests_seen if m]
    server_errors = [m.group(0) for m in requests_seen if m and m.group(3).startswith("5")]

    summary = []
    for identity in identities:
        report = json.loads((tmp_path / f"{identity or 'anonymous'}.json").read_text())
        cases = report["test_cases"]
        summary.append(f"{identity or 'no token'}: {cases['generated']} cases, "
                       f"{cases['with_failures']} failing, {len(report['errors'])} errors")
        assert cases["with_failures"] == 0 and not report["errors"], (
            f"{identity or 'no token'}:\n{outputs[identity][-6000:]}")
        assert runs[identity].returncode == 0, outputs[identity][-6000:]
    print(f"\nschemathesis: {len(statuses)} requests, {len(server_errors)} server errors; "
          + "; ".join(summary))
    assert server_errors == []
    assert len(statuses) >= MIN_REQUESTS, (len(statuses), summary)
    assert requests.get(f"{service.url}/ready", timeout=10).status_code == 200
