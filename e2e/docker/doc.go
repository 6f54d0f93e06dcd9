// Package docker holds end-to-end tests that run a three-node raftogram
// cluster in real containers with the repository's Dockerfile and
// docker-compose.yml, and drive it through the ports published on
// 127.0.0.1 only.
//
// They run only when RAFTOGRAM_E2E_DOCKER=1 is set and `docker info` and
// `docker-compose version` succeed; otherwise the package reports
// "[no tests to run]" with the reason on stderr. Use scripts/e2e-docker.sh
// (make e2e-docker), which builds the binary and the image first:
//
//	RAFTOGRAM_E2E_DOCKER=1 RAFTOGRAM_IMAGE=raftogram:dev go test -count=1 -v ./e2e/docker/
//
// Variables: RAFTOGRAM_IMAGE (image under test, default raftogram:dev),
// RAFTOGRAM_E2E_PROJECT (compose project name, default a fresh random
// one). The cluster is always removed with `docker-compose down -v` at the
// end; on failure the containers' logs are printed first.
package docker
