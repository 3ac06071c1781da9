"""The Jenkins shared library and the example Jenkinsfile: they compile with Groovy (Debian's
groovy, the 2.4 line Jenkins runs) and carry the same stages and steps as the GitLab template."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.local_gitlab import EXAMPLES, ROOT, TEMPLATE

VARS = ROOT / "ci-templates" / "jenkins" / "vars"
SOURCES = [*sorted(VARS.glob("*.groovy")), *sorted(EXAMPLES.glob("*/Jenkinsfile"))]
# Jenkins provides @Library; a stub lets plain groovyc compile a Jenkinsfile.
LIBRARY_STUB = """import java.lang.annotation.*
@Retention(RetentionPolicy.SOURCE)
@interface Library { String[] value() }
"""


def _java_home() -> str:
    if os.environ.get("JAVA_HOME") and Path(os.environ["JAVA_HOME"], "bin", "java").exists():
        return os.environ["JAVA_HOME"]
    for candidate in [Path("/usr/lib/jvm/default-java"), *sorted(Path("/usr/lib/jvm").glob("*"))]:
        if (candidate / "bin" / "java").exists():
            return str(candidate)
    pytest.fail("no JDK found for groovyc (install default-jdk-headless)", pytrace=False)


def compile_groovy(tmp_path: Path, *sources: Path) -> subprocess.CompletedProcess:
    groovyc = shutil.which("groovyc")
    if not groovyc:
        pytest.fail("groovyc is not installed (Debian package groovy)", pytrace=False)
    stub = tmp_path / "Library.groovy"
    stub.write_text(LIBRARY_STUB)
    env = {**os.environ, "JAVA_HOME": _java_home()}
    return subprocess.run([groovyc, "-d", str(tmp_path / "classes"), str(stub),
                           *map(str, sources)], capture_output=True, text=True, env=env,
                          timeout=120)


def test_library_and_jenkinsfiles_compile(tmp_path):
    assert len(SOURCES) >= 3
    result = compile_groovy(tmp_path, *SOURCES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_syntax_error_fails_the_check(tmp_path):
    broken = tmp_path / "dockerCdPipeline.groovy"
    broken.write_text((VARS / "dockerCdPipeline.groovy").read_text().replace(
        "stage('scan') {", "stage('scan' {", 1))
    result = compile_groovy(tmp_path, broken)
    assert result.returncode != 0
    assert "dockerCdPipeline.groovy" in result.stdout + result.stderr


def test_same_stages_and_steps_as_the_gitlab_template():
    _, body = yaml.safe_load_all(TEMPLATE.read_text())
    pipeline = (VARS / "dockerCdPipeline.groovy").read_text()
    assert re.findall(r"stage\('([^']+)'\)", pipeline) == body["stages"]
    gitlab_steps = {m for job in body.values() if isinstance(job, dict)
                    for line in job.get("script", []) for m in re.findall(r"docker-cd (\w+)", line)}
    jenkins_steps = set(re.findall(r"dockerCd\('(\w+)'", pipeline))
    assert jenkins_steps == gitlab_steps


def test_production_waits_for_input_and_credentials_are_bound():
    pipeline = (VARS / "dockerCdPipeline.groovy").read_text()
    production = pipeline.split("stage('deploy-production')", 1)[1]
    assert production.index("input(") < production.index("deployTo(")
    assert "usernamePassword(credentialsId: settings.registryCredentialsId" in pipeline
    assert "passwordVariable: 'CD_REGISTRY_PASSWORD'" in pipeline
    assert "string(credentialsId: settings.serviceTokenCredentialsId" in pipeline
