#!/bin/sh
# docker-cd demo: delivers an application from a commit to production on this machine and
# prints where test, staging and production run it. Needs what .ci/run installs (Docker engine
# running, docker-registry, busybox-static, gitlab-ci-local, trivy, the project installed):
# bash .ci/setup.
#   scripts/demo.sh                 examples/hello-app
#   scripts/demo.sh --app PATH      your own application (its Dockerfile and deploy/ template);
#                                   --variable KEY=VALUE for what its template reads
#   scripts/demo.sh --clean         remove what the demo left running
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
exec python3 -m docker_cd_local.demo "$@"
