"""The pages in a real Chromium against the service as a process (waitress, SQLite) and the
GitLab double: a QA person approves and sees the promotion's pipeline start, a release manager
rolls production back, each step is in the audit log; the ci role and forged forms are
refused. Screenshots go to $DOCKER_CD_TEST_OUTPUT/pages (test-output/pages by default)."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from docker_cd_local.gitlab_double import GitLabDouble
from docker_cd_local.service import PromotionService
from tests.promotion_service.helpers import digest
from tests.promotion_service.web.chromium import start_chromium

REPOSITORY = "registry.example.com/group/app"
ACCESS_TOKEN, TRIGGER_TOKEN = "glpat-pages", "glptt-pages"
POLICY = {"defaults": {"environments": [
    {"name": "test"},
    {"name": "staging", "auto_promote": True},
    {"name": "production", "required_approvals": 1, "four_eyes": True,
     "approver_roles": ["approver", "release-manager"]},
]}}
ROOT = Path(__file__).resolve().parents[3]
OUTPUT = Path(os.environ.get("DOCKER_CD_TEST_OUTPUT", "test-output")) / "pages"
TRIGGER = "/projects/42/trigger/pipeline"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PromotionService, Any]]:
    """The service process (dispatcher thread on) wired to a GitLab double with project 42."""
    with GitLabDouble(access_token=ACCESS_TOKEN) as gitlab:
        gitlab.add_project(42, "group/app", trigger_token=TRIGGER_TOKEN, refs=("main",))
        service = PromotionService.start(
            tmp_path_factory.mktemp("pages-service"), policy=yaml.safe_dump(POLICY),
            settings={"PROMOTION_GITLAB_URL": gitlab.url,
                      "PROMOTION_GITLAB_TOKEN": ACCESS_TOKEN,
                      "PROMOTION_GITLAB_TRIGGER_TOKEN": TRIGGER_TOKEN,
                      "PROMOTION_DISPATCHER_THREAD": "1",
                      "PROMOTION_DISPATCHER_POLL_SECONDS": "0.1",
                      "PROMOTION_SECRET_KEY": "pages-test-secret-key-0123456789"})
        try:
            for name, role, project in (("alice", "approver", None), ("bob", "approver", None),
                                        ("rm", "release-manager", None),
                                        ("pipeline", "ci", "group/app")):
                service.create_token(name, role, project=project)
            yield service, gitlab
        finally:
            service.stop()


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[Any]:
    driver = start_chromium(tmp_path / "profile")
    try:
        yield driver
    finally:
        driver.quit()


class Pipeline:
    """What a project's pipelines report, through the API with the ci token."""

    def __init__(self, service: PromotionService) -> None:
        self.service = service

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self.service.api("POST", path, role="ci", json=body)

    def ref(self, n: int, environment: str | None = None) -> dict[str, Any]:
        body = {"repository": REPOSITORY, "digest": digest(n)}
        return body | ({"environment": environment} if environment else {})

    def build(self, n: int, triggered_by: str = "dev") -> int:
        """Image n registered, scanned, deployed and verified in test (then on to staging)."""
        image = self.post("images", self.ref(n) | {
            "project": "group/app", "gitlab_project_id": 42, "commit_sha": f"{n:040x}",
            "triggered_by": triggered_by, "tags": [f"1.0.{n}"]})
        self.post("scans", self.ref(n) | {"counts": {"critical": 0, "high": 0}})
        self.deployed(n, "test")
        return image["release_id"]

    def deployed(self, n: int, environment: str) -> None:
        """The deploy job of the pipeline the service started (claimed), then verify."""
        if environment != "test":
            promotion = self.triggered(n, environment)
            self.post("claims", self.ref(n, environment) | {
                "promotion_id": promotion["id"], "pipeline_id": promotion["pipeline_id"]})
        self.post("deployments", self.ref(n, environment) | {
            "state": "succeeded", "record_id": f"20261201T00000{n}000Z-{environment[:4]}"})
        self.post("verifications", self.ref(n, environment) | {"passed": True})

    def triggered(self, n: int, environment: str, timeout: float = 20) -> dict[str, Any]:
        """The image's promotion into the environment, once its pipeline was triggered."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for p in self.service.api("GET", "promotions", role="ci",
                                      params={"environment": environment}):
                if p["image"].endswith(digest(n)) and p["pipeline_id"]:
                    return p
            time.sleep(0.1)
        raise AssertionError(f"no pipeline triggered for image {n} into {environment}")

    def to_production(self, n: int, approver: str = "bob") -> None:
        self.build(n)
        self.deployed(n, "staging")
        self.service.api("POST", "approvals", role=approver, json=self.ref(n, "production"))
        self.deployed(n, "production")


def sign_in(driver: Any, service: PromotionService, name: str) -> None:
    driver.delete_all_cookies()
    driver.get(f"{service.url}/ui/sign-in")
    driver.find_element(By.NAME, "token").send_keys(service.tokens[name])
    follow(driver, driver.find_element(By.CSS_SELECTOR, "form button[type=submit]"))
    assert f"{name} " in driver.find_element(By.CSS_SELECTOR, "header .who").text


def submit(driver: Any, button_text: str, reason: str) -> None:
    """Fill in the reason of the form whose button says `button_text`, and send it."""
    button = driver.find_element(By.XPATH, f"//button[normalize-space()='{button_text}']")
    form = button.find_element(By.XPATH, "./ancestor::form")
    form.find_element(By.NAME, "reason").send_keys(reason)
    follow(driver, button)


def follow(driver: Any, clickable: Any) -> None:
    """Click, and wait until the browser has left the page (so no element of it is read)."""
    page = driver.find_element(By.TAG_NAME, "html")
    clickable.click()
    try:
        WebDriverWait(driver, 15).until(expected_conditions.staleness_of(page))
    except TimeoutException:
        raise AssertionError(f"clicking did not load a page: {driver.current_url}") from None


def element(driver: Any, css: str) -> Any:
    """The element once the page that has it is loaded (the page itself when it never is)."""
    try:
        return WebDriverWait(driver, 15).until(
            expected_conditions.presence_of_element_located((By.CSS_SELECTOR, css)))
    except TimeoutException:
        raise AssertionError(f"no {css} on {driver.current_url}:\n"
                             f"{driver.page_source[:3000]}") from None


def flash(driver: Any) -> str:
    return element(driver, ".flash").text


def shot(driver: Any, name: str) -> None:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(OUTPUT / f"{name}.png"))


def session_of(driver: Any, service: PromotionService) -> requests.Session:
    """The browser's session cookie in a requests.Session (to forge what a page would not)."""
    forged = requests.Session()
    for cookie in driver.get_cookies():
        forged.cookies.set(cookie["name"], cookie["value"])
    return forged


def test_approve_promote_roll_back_and_audit_in_chromium(stack, chromium):
    service, gitlab = stack
    pipeline = Pipeline(service)
    pipeline.to_production(1)
    pipeline.to_production(2)
    candidate = pipeline.build(3)
    pipeline.deployed(3, "staging")  # waits in staging for production's approval
    own = pipeline.build(4, triggered_by="alice")  # alice ran this one's pipeline
    pipeline.triggered(4, "staging")
    gitlab.reset()

    sign_in(chromium, service, "alice")
    matrix = chromium.find_element(By.CSS_SELECTOR, "table.matrix")
    assert "group/app" in matrix.text and "1 of 1 approval" not in matrix.text
    production = chromium.find_elements(By.CSS_SELECTOR, "table.matrix td.cell")[2]
    assert "1.0.2" in production.text and "verified" in production.text
    assert "0 of 1 approval(s) for production" in production.text
    shot(chromium, "overview")

    # the release that alice requested: the page says why she may not approve it
    chromium.get(f"{service.url}/ui/releases/{own}")
    assert "You may not approve this: four-eyes: alice" in chromium.page_source
    assert not chromium.find_elements(
        By.XPATH, "//button[normalize-space()='Approve for production']")

    # one requested by another: approve it, and its production pipeline starts
    chromium.get(f"{service.url}/ui/")
    production = chromium.find_elements(By.CSS_SELECTOR, "table.matrix td.cell")[2]
    follow(chromium, production.find_element(By.CSS_SELECTOR, ".candidate a"))
    assert chromium.current_url.endswith(f"/ui/releases/{candidate}")
    assert "blocked" in chromium.find_element(By.ID, "env-production").text
    shot(chromium, "release")
    submit(chromium, "Approve for production", "checked on staging")
    assert flash(chromium) == "Approved for production."
    started = gitlab.wait_for(lambda g: g.calls_to("POST", TRIGGER), timeout=20)
    assert started
    [triggered] = [p for p in gitlab.pipelines
                   if p.variables["CD_TARGET_ENVIRONMENT"] == "production"]
    assert triggered.variables["CD_TARGET_ENVIRONMENT"] == "production"
    assert triggered.variables["CD_IMAGE"] == f"{REPOSITORY}@{digest(3)}"
    chromium.get(f"{service.url}/ui/?environment=production")
    assert "deploying" in chromium.find_element(By.CSS_SELECTOR, "td.cell").text

    # the release manager rolls production back, with a reason
    sign_in(chromium, service, "rm")
    chromium.get(f"{service.url}/ui/projects/1/environments/production")
    submit(chromium, "Roll back production", "payment errors after 1.0.2")
    assert "Rollback of production requested" in flash(chromium)
    assert "Held by rm" in chromium.page_source
    rollback = gitlab.wait_for(lambda g: [p for p in g.pipelines
                                          if "CD_ROLLBACK_TO" in p.variables], timeout=20)
    assert rollback[0].variables["CD_IMAGE"] == f"{REPOSITORY}@{digest(1)}"

    # each step is in the audit log, and the chain verifies
    chromium.get(f"{service.url}/ui/audit")
    assert "The chain verifies" in chromium.page_source
    chromium.find_element(By.NAME, "actor").send_keys("alice")
    follow(chromium, chromium.find_element(By.XPATH, "//button[normalize-space()='Filter']"))
    audit = element(chromium, "table.audit").text
    assert "approval.approve" in audit and "checked on staging" in audit
    chromium.find_element(By.NAME, "actor").clear()
    chromium.find_element(By.NAME, "actor").send_keys("rm")
    follow(chromium, chromium.find_element(By.XPATH, "//button[normalize-space()='Filter']"))
    audit = element(chromium, "table.audit").text
    assert "environment.hold_set" in audit and "payment errors after 1.0.2" in audit
    export = chromium.find_element(By.LINK_TEXT, "export JSON lines").get_attribute("href")
    lines = session_of(chromium, service).get(export, timeout=10).text.splitlines()
    assert lines and all('"actor": "rm"' in line for line in lines)
    follow(chromium, chromium.find_element(By.LINK_TEXT, "DORA"))
    production = chromium.find_element(By.XPATH, "//tr[td[normalize-space()='production']]")
    assert production.find_elements(By.CSS_SELECTOR, "svg rect")
    shot(chromium, "dora")
    assert not [e for e in chromium.get_log("browser") if "Content Security Policy" in
                e["message"]]
    # the docs link the screenshots where this test writes them
    linked = re.findall(r"\(\.\./(test-output/pages/[a-z]+\.png)\)",
                        (ROOT / "docs" / "web-pages.md").read_text())
    assert len(linked) == 3 and all((OUTPUT / Path(link).name).is_file() for link in linked)
    assert all(Path(link).parent == Path("test-output/pages") for link in linked)


def test_the_ci_role_sees_no_buttons_and_forged_forms_are_refused(stack, chromium):
    service, _ = stack
    Pipeline(service).build(5)
    sign_in(chromium, service, "pipeline")
    for path in ("/ui/", "/ui/releases/1", "/ui/projects/1/environments/production"):
        chromium.get(f"{service.url}{path}")
        buttons = [b.text for b in chromium.find_elements(By.CSS_SELECTOR, "main button")]
        assert buttons == ["Filter"] or buttons == [], (path, buttons)
    # a form the page never showed, posted with this session and a valid CSRF token
    forged = session_of(chromium, service)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', chromium.page_source).group(1)
    url = f"{service.url}/ui/projects/1/environments/production/rollback"
    refused = forged.post(url, data={"reason": "forged", "csrf_token": csrf}, timeout=10)
    assert refused.status_code == 403 and "may not do this" in refused.text
    # and a form without its CSRF token is refused before anything else
    no_token = forged.post(url, data={"reason": "forged"}, timeout=10)
    assert no_token.status_code == 400 and "CSRF" in no_token.text
    page = forged.get(f"{service.url}/ui/", timeout=10)
    policy = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "unsafe-inline" not in policy
