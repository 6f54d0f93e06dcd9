# The targets are the commands the README documents.
GO        ?= go
BIN       ?= raftogram
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
TOOLS_BIN := $(CURDIR)/bin

PROTOC_GEN_GO_VERSION      := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
# Linters run by 'make test', installed at these versions into bin/ on first use.
BUF_VERSION         := v1.75.0
STATICCHECK_VERSION := v0.8.2
BUF                 := $(TOOLS_BIN)/buf-$(BUF_VERSION)/buf
STATICCHECK         := $(TOOLS_BIN)/staticcheck-$(STATICCHECK_VERSION)/staticcheck
# The released commit 'buf breaking' compares api/proto with (buf.yaml says which rules
# apply to which file). Move it forward at each release; it needs the git history
# (buf clones .git; depth=100000 reaches the baseline however far main has moved:
# buf's default depth stopped finding it ~190 commits on).
PROTO_BASELINE      := e2e9d13
PROTOS := api/proto/raftogram/v1/messaging.proto api/proto/raftogram/v1/admin.proto api/proto/raftogram/peer/v1/peer.proto api/proto/raftogram/events/v1/events.proto

.PHONY: build test fmt-check vet staticcheck buf-check lint-tools proto tools dev-cluster dev-cluster-secure bench torture docker e2e-docker clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/raftogram

## test: formatting, vet, staticcheck, buf lint/breaking, then every test with the race detector.
test: fmt-check vet staticcheck buf-check
	$(GO) test -race -count=1 -timeout 15m ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

staticcheck: $(STATICCHECK)
	$(STATICCHECK) ./...

## buf-check: lint api/proto and check it against the released commit (buf.yaml).
buf-check: $(BUF)
	$(BUF) lint
	$(BUF) breaking --against '.git#ref=$(PROTO_BASELINE),depth=100000' --against-config buf.yaml

## lint-tools: install the pinned linters (a failed install fails the target).
lint-tools: $(BUF) $(STATICCHECK)

$(BUF):
	GOBIN=$(dir $@) $(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)

$(STATICCHECK):
	GOBIN=$(dir $@) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

## proto: regenerate the committed Go code (needs protoc from Debian's protobuf-compiler).
tools:
	GOBIN=$(TOOLS_BIN) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	GOBIN=$(TOOLS_BIN) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)

proto: tools
	PATH=$(TOOLS_BIN):$$PATH protoc -I api/proto \
		--go_out=. --go_opt=module=github.com/raftogram/raftogram \
		--go-grpc_out=. --go-grpc_opt=module=github.com/raftogram/raftogram \
		$(PROTOS)

## dev-cluster: the README's three local nodes in one terminal; Ctrl-C stops them.
dev-cluster: build
	./scripts/dev-cluster.sh

## dev-cluster-secure: the same three nodes with TLS, mutual TLS on Raft and
## token auth; secrets and configs under ./data/secure/ (docs/security.md).
dev-cluster-secure: build
	GO=$(GO) ./scripts/dev-cluster-secure.sh

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

## torture: the long fault-injection profile (docs/torture.md); SEED=0 picks one from the clock.
DURATION ?= 10m
SEED     ?= 0
NODES    ?= 3
torture:
	$(GO) run ./torture/cmd/torture -duration $(DURATION) -seed $(SEED) -nodes $(NODES)

DOCKER_IMAGE ?= raftogram:dev

## docker: the container image, FROM scratch plus the static binary (docs/containers.md).
docker: build
	docker build --build-arg VERSION=$(VERSION) -t $(DOCKER_IMAGE) .

## e2e-docker: binary + throwaway image, then e2e/docker against a compose cluster.
e2e-docker:
	GO=$(GO) ./scripts/e2e-docker.sh

clean:
	rm -f $(BIN)
