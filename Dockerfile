# The image the CI template's jobs run in (input `runner_image`, default docker-cd:0.1.0): the
# docker-cd steps and Trivy in a virtual environment on a Debian base. Build it and push it to
# your registry:
#   docker build -t registry.example.com/platform/docker-cd:0.1.0 .
# Build arguments: BASE, any Debian-like image with python3 and its venv module; PIP_NO_INDEX=1
# and PIP_FIND_LINKS=/src/wheelhouse install offline from a wheelhouse put in the context, the
# project's own wheel included (this project's CI builds it so, on a Debian base made with
# mmdebstrap: tests/runner_image.py); without them the project is built from the context.
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}
ARG PIP_NO_INDEX
ARG PIP_FIND_LINKS
COPY . /src
# git: a deploy of an older release restores the release's template from its commit.
RUN if ! command -v git >/dev/null; then apt-get update \
    && apt-get install -y --no-install-recommends git && rm -rf /var/lib/apt/lists/*; fi
RUN if [ -n "$PIP_FIND_LINKS" ]; then project="docker-cd[runner]"; else project="/src[runner]"; fi \
 && python3 -m venv /opt/docker-cd \
 && /opt/docker-cd/bin/pip install --no-cache-dir "$project" \
 && rm -rf /src
ENV PATH=/opt/docker-cd/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
LABEL org.opencontainers.image.title="docker-cd"
CMD ["docker-cd", "--help"]
