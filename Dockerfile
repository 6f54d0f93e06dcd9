# raftogram node image: the static binary from `make build` on an empty
# (scratch) base, so building needs no registry and no network.
#
#   make build && docker build -t raftogram:dev .     # or: make docker
#
# The image runs as the numeric non-root user 65532:65532, keeps all node
# state in the /data volume and is configured by RAFTOGRAM_* environment
# variables alone (a missing /config.yaml is fine). The defaults below bind
# every listener on 0.0.0.0; RAFTOGRAM_NODE_ID and RAFTOGRAM_CLUSTER_PEERS
# (dialable addresses, never 0.0.0.0) must be set for every node. See
# docs/containers.md and docker-compose.yml.

# Empty directories owned by the runtime user. scratch has no shell to
# mkdir/chown with, so they are made by WORKDIR in a scratch stage and copied
# with --chown (legacy builder and BuildKit alike).
FROM scratch AS dirs
WORKDIR /data
WORKDIR /tmp

FROM scratch
ARG VERSION=dev
LABEL org.opencontainers.image.title="raftogram" \
      org.opencontainers.image.description="Raft-replicated messenger node (gRPC raftogram.v1.Messenger, HTTP /health)" \
      org.opencontainers.image.source="https://github.com/raftogram/raftogram" \
      org.opencontainers.image.version="${VERSION}"

COPY --from=dirs --chown=65532:65532 /data /data
# SQLite and Go look for a writable temporary directory here.
COPY --from=dirs --chown=65532:65532 /tmp /tmp
# Built by `make build` (CGO_ENABLED=0, pure-Go SQLite): no libc needed.
COPY raftogram /raftogram

ENV RAFTOGRAM_RAFT_BIND_ADDR=0.0.0.0:7000 \
    RAFTOGRAM_GRPC_BIND_ADDR=0.0.0.0:9000 \
    RAFTOGRAM_HEALTH_BIND_ADDR=0.0.0.0:8080 \
    RAFTOGRAM_DATA_DIR=/data \
    TMPDIR=/tmp

USER 65532:65532
WORKDIR /
VOLUME /data
# raft, gRPC, health
EXPOSE 7000 9000 8080

# `raftogram healthcheck` probes GET /health on the port of
# RAFTOGRAM_HEALTH_BIND_ADDR (0.0.0.0 replaced by 127.0.0.1); it fails while
# the node is down or knows no leader.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/raftogram", "healthcheck"]

# SIGTERM (docker stop) shuts the node down gracefully within
# RAFTOGRAM_SHUTDOWN_TIMEOUT (10s); give `docker stop -t` more than that.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/raftogram"]
