"""Hostile templates: bounded YAML, files only from the template directory, no host escape
unless the template's own allowances say so."""

from __future__ import annotations

import os
import time

import pytest

from steps import cli
from steps.template import TemplateError, load, loads
from tests.steps.template.test_template import write

ALIAS_BOMB = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
services: {web: {image: a, x-bomb: *i}}
"""


def render(tmp_path, capsys, *extra, environ=None) -> tuple[int, str]:
    code = cli.run(["template", "render", "--environment", "test", "--template-dir",
                    str(tmp_path), *extra], environ or {})
    captured = capsys.readouterr()
    return code, captured.err + captured.out


def test_an_alias_bomb_fails_fast_naming_the_file(tmp_path, capsys):
    assert len(ALIAS_BOMB) < 600
    write(tmp_path, {"compose.yml": ALIAS_BOMB})
    started = time.monotonic()
    code, log = render(tmp_path, capsys)
    assert time.monotonic() - started < 5
    assert code == 2
    assert "compose.yml: more than 20,000 YAML nodes once its aliases are expanded" in log


def test_a_50_mb_template_fails_fast_naming_the_file(tmp_path, capsys):
    with open(tmp_path / "compose.yml", "w") as f:
        f.write("services:\n  web:\n    image: a\n    labels:\n")
        line = "      k{}: " + "v" * 80 + "\n"
        for i in range(50 * 1024 * 1024 // len(line)):
            f.write(line.format(i))
    started = time.monotonic()
    code, log = render(tmp_path, capsys)
    assert time.monotonic() - started < 5
    assert code == 2
    assert "compose.yml: 54,5" in log and "bytes is more than the 1,048,576 a template file " \
                                           "may have" in log


@pytest.mark.parametrize(("text", "problem"), [
    ("x: &x {a: *x}\nservices: {web: {image: a}}\n", "a template this big is refused"),
    ("services: {web: {image: a, x-deep: " + "[" * 60 + "]" * 60 + "}}\n",
     "nested deeper than 40 levels"),
    ("".join(f"a{i}: &a{i} 1\n" for i in range(300)) + "services: {web: {image: a}}\nx-l: ["
     + ",".join(f"*a{i % 300}" for i in range(600)) + "]\n", "more than 500 aliases"),
])
def test_yaml_bounds(text, problem):
    with pytest.raises(TemplateError) as e:
        loads({"compose.yml": text}, {})
    assert e.value.message.startswith("compose.yml: ")
    assert problem in e.value.message


@pytest.mark.parametrize("reference", [
    "env_file: ../outside.env",
    "env_file: /etc/hostname",
    "configs: [c]\nconfigs: {c: {file: ../outside.env}}",
    "secrets: [s]\nsecrets: {s: {file: link-to-outside}}",
])
def test_file_references_stay_inside_the_template_directory(tmp_path, capsys, reference):
    directory = tmp_path / "deploy"
    directory.mkdir()
    (tmp_path / "outside.env").write_text("STOLEN=shadow-contents\n")
    os.symlink(tmp_path / "outside.env", directory / "link-to-outside")
    service, _, top = reference.partition("\n")
    write(directory, {"compose.yml": f"services:\n  web:\n    image: a\n    {service}\n{top}\n"})
    code, log = render(directory, capsys)
    assert code == 2
    assert "outside the template directory" in log
    assert "shadow-contents" not in log


def test_a_symlinked_compose_file_pointing_outside_is_refused(tmp_path, capsys):
    directory = tmp_path / "deploy"
    directory.mkdir()
    (tmp_path / "elsewhere.yml").write_text("services: {web: {image: a}}\n")
    os.symlink(tmp_path / "elsewhere.yml", directory / "compose.yml")
    code, log = render(directory, capsys)
    assert code == 2 and "outside the template directory" in log


def test_files_inside_the_directory_still_work_through_a_symlink(tmp_path):
    write(tmp_path, {"compose.yml": "services:\n  web:\n    image: a\n    env_file: app.env\n",
                     "real.env": "A=1\n"})
    os.symlink(tmp_path / "real.env", tmp_path / "app.env")
    assert load(tmp_path, "test", {}).model["services"]["web"]["environment"] == {"A": "1"}


@pytest.mark.parametrize(("line", "key"), [
    ("volumes: ['/var/run/docker.sock:/var/run/docker.sock']", "volumes[0]"),
    ("volumes: ['/:/host']", "volumes[0]"),
    ("volumes: ['/etc:/host-etc:ro']", "volumes[0]"),
    ("volumes: ['/var:/v']", "volumes[0]"),
    ("volumes: ['/srv/../proc:/p']", "volumes[0]"),
    ("volumes: [{type: bind, source: /run/containerd/containerd.sock, target: /s}]", "volumes[0]"),
    ("cap_add: [ALL]", "cap_add[0]"),
    ("cap_add: [CHOWN, SYS_ADMIN]", "cap_add[1]"),
    ("cap_add: [cap_sys_ptrace]", "cap_add[0]"),
])
def test_host_escapes_are_refused_with_file_line_and_key(line, key):
    with pytest.raises(TemplateError) as e:
        loads({"compose.yml": f"services:\n  web:\n    image: a\n    {line}\n"}, {})
    assert e.value.message.startswith(f"compose.yml:4: services.web.{key}: ")
    assert "allow it under x-docker-cd.allow" in e.value.message


def test_a_volume_driver_binding_a_system_path_is_refused():
    with pytest.raises(TemplateError) as e:
        loads({"compose.yml": "services: {web: {image: a, volumes: ['d:/d']}}\nvolumes:\n  d:\n"
                              "    driver_opts: {type: none, o: bind, device: /etc}\n"}, {})
    assert "compose.yml:4: volumes.d.driver_opts.device: mounts the host's /etc" in \
        e.value.message


def test_ordinary_binds_and_default_capabilities_pass(tmp_path):
    write(tmp_path, {"compose.yml": "services:\n  web:\n    image: a\n    volumes: ['/srv/app:/d',"
                                    " './static:/s']\n    cap_add: [NET_BIND_SERVICE]\n"})
    load(tmp_path, "test", {})


def test_the_template_can_allow_a_host_escape_with_a_reason():
    text = """\
services:
  agent:
    image: a
    volumes: ['/var/run/docker.sock:/var/run/docker.sock']
    cap_add: [NET_ADMIN]
x-docker-cd:
  allow:
    - {service: agent, bind: /var/run/docker.sock, reason: runs CI jobs on this engine}
    - {service: agent, cap_add: NET_ADMIN, reason: sets up the tunnel}
"""
    allowed = loads({"compose.yml": text}, {})
    assert "bind: /var/run/docker.sock" in allowed.rendered()
    other = loads({"compose.yml": text.replace("runs CI jobs", "runs jobs")}, {})
    assert other.hash() != allowed.hash()  # the allowance is part of what is approved
    with pytest.raises(TemplateError) as e:
        loads({"compose.yml": text.replace("service: agent, bind", "service: other, bind")}, {})
    assert "compose.yml:4: services.agent.volumes[0]: binds the host's /var/run/docker.sock" in \
        e.value.message
    with pytest.raises(TemplateError) as e:
        loads({"compose.yml": text.replace(", reason: sets up the tunnel", "")}, {})
    assert "compose.yml:9: x-docker-cd.allow[1]: reason is missing" in e.value.message


def test_a_referenced_file_over_16_mib_is_refused_without_reading_it_all(tmp_path, capsys):
    write(tmp_path, {"compose.yml": "services:\n  web:\n    image: a\n    configs: [big]\n"
                                    "configs:\n  big: {file: big.bin}\n"})
    with open(tmp_path / "big.bin", "wb") as f:
        f.truncate(17 * 1024 * 1024)
    code, log = render(tmp_path, capsys)
    assert code == 2
    assert "compose.yml:6: configs.big.file: file big.bin is larger than 16 MiB" in log
