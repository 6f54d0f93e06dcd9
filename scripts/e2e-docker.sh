#!/usr/bin/env bash
# e2e-docker.sh — build the static binary and the container image, then run
# the end-to-end tests in e2e/docker against a three-node docker-compose
# cluster (README flow, leader failover, network partition, restarts with
# and without the volumes), then against the same cluster with
# docker-compose.secure.yml on top (TLS and auth; TestComposeSecure writes
# its throwaway CA, certificates and tokens with internal/certs/certgen).
#
#   scripts/e2e-docker.sh            # or: make e2e-docker
#   scripts/e2e-docker.sh -run 'TestComposeCluster/readme'   # extra go test flags
#
# Needs a working `docker` engine and the `docker-compose` tool (v1.29 is
# fine), and the host ports 127.0.0.1:9000-9002 and :8080-8082 free (the
# compose file publishes the README's ports). No registry is needed: the
# image is FROM scratch.
#
# Environment:
#   RAFTOGRAM_IMAGE        test this image instead of building a throwaway one
#                          (it is then neither built nor removed)
#   RAFTOGRAM_E2E_PROJECT  compose project name (default rge2e<random>)
#   GO                     go command (default go)
#
# Every run uses its own compose project and removes it (down -v: containers,
# network and volumes) on exit, including on failure or Ctrl-C. The exit
# status is go test's.
set -euo pipefail

cd "$(dirname "$0")/.."
GO=${GO:-go}
start=$(date +%s)

fail() { echo "e2e-docker: $*" >&2; exit 1; }

command -v docker >/dev/null || fail "docker is not installed"
command -v docker-compose >/dev/null || fail "docker-compose is not installed"
docker info >/dev/null 2>&1 || fail "\`docker info\` fails: is the Docker engine running and reachable?"
echo "e2e-docker: $(docker version --format 'engine {{.Server.Version}}' 2>/dev/null), $(docker-compose version --short 2>/dev/null | sed 's/^/docker-compose /')"

project=${RAFTOGRAM_E2E_PROJECT:-rge2e$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')}
built_image=
if [[ -n "${RAFTOGRAM_IMAGE:-}" ]]; then
	image=$RAFTOGRAM_IMAGE
	docker image inspect "$image" >/dev/null 2>&1 || fail "RAFTOGRAM_IMAGE=$image does not exist"
else
	image=raftogram:e2e-$project
fi

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	# The Go test tears its project down itself; this covers a killed or
	# timed-out test binary (the base file names every service, the secure
	# override included).
	RAFTOGRAM_IMAGE=$image docker-compose -p "$project" -f docker-compose.yml --ansi never \
		down -v --remove-orphans -t 10 >/dev/null 2>&1 || true
	if [[ -n "$built_image" ]]; then
		docker image rm "$built_image" >/dev/null 2>&1 || true
	fi
	echo "e2e-docker: finished in $(( $(date +%s) - start ))s (exit $rc)"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ -z "${RAFTOGRAM_IMAGE:-}" ]]; then
	echo "e2e-docker: make build"
	make --no-print-directory build GO="$GO"
	echo "e2e-docker: docker build -t $image"
	version=$(git describe --tags --always --dirty 2>/dev/null || echo dev)
	built_image=$image
	docker build -q --build-arg VERSION="$version" -t "$image" . >/dev/null
fi

echo "e2e-docker: go test ./e2e/docker/ (compose project $project, image $image)"
RAFTOGRAM_E2E_DOCKER=1 RAFTOGRAM_IMAGE=$image RAFTOGRAM_E2E_PROJECT=$project \
	"$GO" test -count=1 -v -timeout 20m ./e2e/docker/ "$@"
