#!/bin/sh
# docker-cd demo: delivers examples/hello-app from a commit to production on this machine and
# prints where test, staging and production serve. Needs what .ci/run installs (Docker engine
# running, docker-registry, busybox-static, gitlab-ci-local, trivy, the project installed):
# bash .ci/setup.
#   scripts/demo.sh            run it        scripts/demo.sh --clean    remove the app it started
set -eu
cd "$(dirname "$0")/.."
missing=""
for tool in docker-registry gitlab-ci-local trivy docker-cd promotion-service git; do
    command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
[ -x /bin/busybox ] || missing="$missing busybox-static(/bin/busybox)"
if [ -n "$missing" ]; then
    echo "Error: missing:$missing (bash .ci/setup installs them)" >&2
    exit 2
fi
python3 -c 'import docker; docker.from_env().ping()' 2>/dev/null || {
    echo "Error: the Docker engine does not answer (start dockerd; .ci/run does)" >&2
    exit 3
}
exec python3 scripts/demo.py "$@"
