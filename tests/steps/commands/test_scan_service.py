"""`docker-cd scan` reporting its summary to the real promotion service (a real process)."""

from __future__ import annotations

from pathlib import Path

from steps.cli import run

DATA = Path(__file__).parents[1] / "data"
REPORT = str(DATA / "trivy-debian-python.json")
REPO = "registry.example.com/team/app"
DIGEST = "sha256:4b2c1c8e0f0b2e0a9d1f6a1a8e3c2b7d6f5e4a3b2c1d0e9f8a7b6c5d4e3f2a1b"


def env(service):
    return {"CD_SERVICE_URL": service.url, "CD_SERVICE_TOKEN": service.tokens["ci"],
            "CI_JOB_URL": "https://gitlab.example.com/team/app/-/jobs/77"}


def recorded(service, image_id):
    return service.api("GET", "audit", params={"action": "scan.recorded",
                                               "subject_id": str(image_id)})


def test_the_summary_is_recorded_for_the_image_even_when_the_policy_says_no(service, capsys):
    image = service.api("POST", "images", role="ci",
                        json={"repository": REPO, "digest": DIGEST, "project": "team/app"})
    assert run(["scan", f"{REPO}@{DIGEST}", "--from-report", REPORT], env(service)) == 1
    err = capsys.readouterr().err
    assert "Scan summary recorded by the promotion service" in err
    assert service.tokens["ci"] not in err
    [entry] = recorded(service, image["id"])
    assert entry["after"]["counts"] == {"critical": 2, "high": 4, "medium": 2, "low": 1,
                                        "unknown": 0}
    assert entry["after"]["scanner"] == "trivy 0.76.0"


def test_an_image_the_service_does_not_know_is_a_warning_not_a_failure(service, capsys):
    digest = "sha256:" + "77" * 32
    code = run(["scan", f"{REPO}@{digest}", "--from-report", REPORT, "--severity-threshold",
                "NONE"], env(service))
    err = capsys.readouterr().err
    assert code == 0
    assert f"Warning: the promotion service does not know {REPO}@{digest} yet" in err
    assert "docker-cd register --scan-report" in err


def test_a_refused_token_is_exit_2(service, capsys):
    code = run(["scan", f"{REPO}@{DIGEST}", "--from-report", REPORT, "--severity-threshold",
                "NONE"], {**env(service), "CD_SERVICE_TOKEN": "not-a-token"})
    assert code == 2
    assert "CD_SERVICE_TOKEN" in capsys.readouterr().err.strip().splitlines()[-1]
