"""The job log: masked lines, echoed commands, GitLab sections."""

from steps.runtime.log import Log
from steps.runtime.masking import Masker


def test_log_masks_every_line(capsys):
    masker = Masker()
    masker.add("hunter2-secret")
    log = Log(masker=masker)
    log.command(["docker", "login", "-p", "hunter2-secret"])
    log.info("token hunter2-secret used")
    err = capsys.readouterr().err
    assert "hunter2" not in err
    assert "+ docker login -p [MASKED]\n" in err


def test_gitlab_sections_wrap_their_lines(capsys):
    log = Log(sections=True)
    with log.section("Build image", collapsed=True):
        log.info("step 1/3")
    err = capsys.readouterr().err
    assert "section_start:" in err and "[collapsed=true]" in err and "Build image" in err
    assert err.index("step 1/3") < err.index("section_end:")
