"""The runner image the CI template's jobs use by default (the root Dockerfile), built as this
project's CI builds it: on a Debian base made with mmdebstrap, installed from a wheelhouse."""

from tests.runner_image import runner_image


def test_the_runner_image_holds_the_steps_trivy_and_the_gitlab_double(docker):
    image = runner_image(docker)
    script = ("docker-cd --help && trivy --version && docker-cd-gitlab-double --help "
              "&& promotion-service --help")
    out = docker.containers.run(image, ["sh", "-c", script], network_mode="none",
                                remove=True).decode()
    assert "usage: docker-cd <step>" in out
    assert "Version: " in out  # trivy's
    assert "ID:PATH[:TRIGGER_TOKEN]" in out  # the installed GitLab API double
    assert docker.images.get(image).labels["org.opencontainers.image.title"] == "docker-cd"
