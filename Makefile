# umbra — build, test, benchmark. See README.md.
SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin/umbra
PKGS := ./...
# FUZZTIME is how long each fuzz target runs under `make fuzz`.
FUZZTIME ?= 60s

.PHONY: all build test test-short bench demo demo-local lint deps fuzz clean

all: build

build:
	@mkdir -p bin
	$(GO) build -o $(BIN) ./cmd/umbra

# The whole suite: unit, integration (real binary, real Pebble on disk),
# crash and memory tests. The CLI tests use the binary built here.
test: build
	@./scripts/test-deps.sh
	UMBRA_BIN=$(BIN) $(GO) test -count=1 -timeout 40m $(PKGS)

test-short: build
	@./scripts/test-deps.sh
	UMBRA_BIN=$(BIN) $(GO) test -count=1 -short $(PKGS)

# Benchmarks on a 1 GiB random file: local put and get, and beside them the
# raw AES-256-GCM, SHA-256 and Reed-Solomon throughput measured in the same
# run, with the ratios.
bench: build
	@$(GO) test -run '^$$' -bench 'Raw|Local' -benchtime 1x -count 1 ./internal/engine/ | tee /tmp/umbra-bench.txt
	@$(GO) test -run '^$$' -bench 'Raw' -count 1 ./internal/engine/ | tee -a /tmp/umbra-bench.txt
	@$(GO) test -run '^$$' -bench 'RawStream' -benchtime 1x -count 1 ./internal/p2phost/ | tee -a /tmp/umbra-bench.txt
	@UMBRA_BIN=$(BIN) $(GO) test -run '^$$' -bench 'Network5Nodes|Folders5Nodes|Mount5Nodes|GCStall5Nodes' -benchtime 1x -count 1 -timeout 20m ./cmd/umbra/ | tee -a /tmp/umbra-bench.txt
	@$(GO) run ./internal/tools/benchreport < /tmp/umbra-bench.txt

# The main job: a 5-node network on 127.0.0.1 stores a file from one node,
# loses two nodes to SIGKILL, and reads the file back on a third.
demo: build
	@./scripts/demo.sh $(BIN)

# The same round trip on one node, no network.
demo-local: build
	@./scripts/demo-local.sh $(BIN)

# Import grouping (standard library, others, then umbra's own) as goimports
# writes it; layering and size rules (internal/tools/archcheck).
GOIMPORTS := golang.org/x/tools/cmd/goimports@v0.52.0
lint:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@out=$$($(GO) run $(GOIMPORTS) -local github.com/umbra-store/umbra -l .); if [ -n "$$out" ]; then echo "goimports -local github.com/umbra-store/umbra needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) run ./internal/tools/archcheck
	@if $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 -version >/dev/null 2>&1; then \
		$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 $(PKGS); \
	else echo "staticcheck not available; skipped"; fi

# The import graph in docs/architecture.md, from go list.
deps:
	$(GO) run ./internal/tools/archcheck -graph docs/architecture.md

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParseCap$$' -fuzztime $(FUZZTIME) ./keyring/
	$(GO) test -run '^$$' -fuzz '^FuzzManifestDecode$$' -fuzztime $(FUZZTIME) ./internal/format/
	$(GO) test -run '^$$' -fuzz '^FuzzRecordDecode$$' -fuzztime $(FUZZTIME) ./internal/format/
	$(GO) test -run '^$$' -fuzz '^FuzzSnapshotDecode$$' -fuzztime $(FUZZTIME) ./internal/format/
	$(GO) test -run '^$$' -fuzz '^FuzzUnpad$$' -fuzztime $(FUZZTIME) ./internal/seal/
	$(GO) test -run '^$$' -fuzz '^FuzzReadFrame$$' -fuzztime $(FUZZTIME) ./internal/shard/
	$(GO) test -run '^$$' -fuzz '^FuzzString$$' -fuzztime $(FUZZTIME) ./internal/printable/

clean:
	rm -rf bin
