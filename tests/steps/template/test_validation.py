"""Every problem of a template at once, each with file:line and a suggestion when one is close."""

from __future__ import annotations

import pytest

from steps import cli
from steps.template import TemplateError, loads
from tests.steps.template.test_template import write


def problems(text: str, overlay: str | None = None, environ=None) -> tuple[str, ...]:
    texts = {"compose.yml": text, **({"compose.test.yml": overlay} if overlay else {})}
    with pytest.raises(TemplateError) as e:
        loads(texts, environ or {})
    return e.value.problems


@pytest.mark.parametrize(("line", "problem"), [
    ("deploy: {replicas: two}", "services.web.deploy.replicas: expected a whole number, 0 or "
                                "more, got 'two'"),
    ("healthcheck: {test: [CMD, 'true'], retries: many}",
     "services.web.healthcheck.retries: expected a whole number, 0 or more, got 'many'"),
    ("healthcheck: {test: [CMD, 'true'], interval: soon}",
     "services.web.healthcheck.interval: expected a duration like 10s, 500ms or 1m30s, got "
     "'soon'"),
    ("restart: sometimes", "services.web.restart: expected no, always, unless-stopped or "
                           "on-failure[:N], got 'sometimes'"),
    ("restart: alway", "did you mean 'always'?"),
    ("ports: [{target: http}]", "services.web.ports[0].target: expected a port number"),
    ("deploy: {update_config: {order: first}}", "services.web.deploy.update_config.order: "
                                                "'first' is not one of start-first, stop-first"),
    ("stop_grace_period: a while", "services.web.stop_grace_period: expected a duration"),
    ("read_only: maybe", "services.web.read_only: expected true or false, got 'maybe'"),
    ("deploy: {resources: {limits: {memory: lots}}}",
     "services.web.deploy.resources.limits.memory: expected a size like 256m or 1g"),
])
def test_a_wrong_value_is_a_problem_at_its_line(line, problem):
    [found] = problems(f"services:\n  web:\n    image: a\n    {line}\n")
    assert found.startswith("compose.yml:4: ")
    assert problem in found


def test_a_value_from_a_variable_is_checked_after_interpolation():
    [found] = problems("services:\n  web:\n    image: a\n    deploy: {replicas: '${N}'}\n",
                       environ={"N": "two"})
    assert "replicas: expected a whole number, 0 or more, got 'two'" in found
    loads({"compose.yml": "services:\n  web:\n    image: a\n    deploy: {replicas: '${N}'}\n"},
          {"N": "3"})


@pytest.mark.parametrize(("text", "problem"), [
    ("services:\n  web:\n    image: a\n    helthcheck: {test: [CMD, 'true']}\n",
     "compose.yml:4: services.web.helthcheck: unknown key; did you mean 'healthcheck'?"),
    ("services:\n  web:\n    image: a\n    deploy: {replicsa: 2}\n",
     "compose.yml:4: services.web.deploy.replicsa: unknown key; did you mean 'replicas'?"),
    ("services:\n  web:\n    image: a\n    enviroment: {A: 1}\n",
     "services.web.enviroment: unknown key; did you mean 'environment'?"),
    ("servics:\n  web: {image: a}\nservices:\n  web: {image: a}\n",
     "compose.yml:1: servics: unknown key; did you mean 'services'?"),
    ("services:\n  web:\n    image: a\n    depends_on: [dbb]\n  db: {image: b}\n",
     "services.web.depends_on.dbb: depends on 'dbb', which is not a service here; did you mean "
     "'db'?"),
    ("services:\n  web:\n    image: a\n    volumes: ['dta:/d']\nvolumes: {data: {}}\n",
     "volume 'dta' is not declared under the top-level volumes:; did you mean 'data'?"),
])
def test_a_typo_gets_a_suggestion(text, problem):
    assert any(problem in p for p in problems(text))


def test_every_problem_is_reported_at_once_across_files():
    found = problems(
        "services:\n  web:\n    image: a\n    restart: sometimes\n    deploy: {replicas: two}\n"
        "  db:\n    image: b\n    depends_on: [nothere]\n",
        overlay="services:\n  web:\n    helthcheck: {}\n    ports: ['80:80:80:80']\n")
    assert len(found) == 5, found
    assert any(p.startswith("compose.yml:4: services.web.restart") for p in found)
    assert any(p.startswith("compose.yml:5: services.web.deploy.replicas") for p in found)
    assert any(p.startswith("compose.yml:8: services.db.depends_on.nothere") for p in found)
    assert any(p.startswith("compose.test.yml:3: services.web.helthcheck") for p in found)
    assert any(p.startswith("compose.test.yml:4: services.web.ports[0]") for p in found)


def test_the_cli_reports_every_problem_with_exit_2(tmp_path, capsys):
    write(tmp_path, {"compose.yml": "services:\n  web:\n    image: a\n    restart: sometimes\n"
                                    "    deploy: {replicas: two}\n    pid: host\n"})
    code = cli.run(["template", "render", "--environment", "test", "--template-dir",
                    str(tmp_path)], {})
    err = capsys.readouterr().err
    assert code == 2
    assert "Error: 3 problems in the template:" in err
    assert "compose.yml:4: services.web.restart" in err
    assert "compose.yml:5: services.web.deploy.replicas" in err
    assert "compose.yml:6: services.web.pid: the docker target does not support this key" in err
    assert "Traceback" not in err and "ValueError" not in err


@pytest.mark.parametrize("target", ["docker", "swarm"])
def test_a_value_the_target_cannot_honour_is_found_without_an_engine(tmp_path, capsys, target):
    write(tmp_path, {"compose.yml": "services:\n  web:\n    image: a\n    ports: ['8080:80']\n"
                                    "    deploy: {replicas: 0}\n" if target == "docker" else
                                    "services:\n  db:\n    image: b\n"
                                    "    deploy: {mode: global, replicas: 2}\n"})
    code = cli.run(["template", "render", "--environment", "test", "--template-dir",
                    str(tmp_path), "--target", target], {})
    err = capsys.readouterr().err
    assert code == 2
    if target == "docker":
        assert "compose.yml:5: services.web.deploy.replicas: the docker target runs at least " \
               "one container" in err
    else:
        assert "services.db.deploy.replicas: a global service runs one task per node" in err
