# The Makefile is what CI runs; the README is what a newcomer runs.
GO        ?= go
BIN       := bin/eventlake
DATA_DIR  ?= ./data
TEST_TIMEOUT ?= 30m

.PHONY: all build run test test-race test-faults test-rest vet fmt-check fuzz bench clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/eventlake

# First README command: the embedded default (broker on 127.0.0.1:9092,
# query API on 127.0.0.1:8080, demo producer), data under $(DATA_DIR).
run: build
	./$(BIN) dev --data-dir $(DATA_DIR)

# Second README command: every test, against real servers the tests start.
test: fmt-check vet
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...

# The same tests with the race detector, in the tests and in the binary the
# end-to-end tests start (any race a process reports fails its test).
test-race:
	$(GO) build -race -o bin/eventlake-race ./cmd/eventlake
	EVENTLAKE_BIN=$(CURDIR)/bin/eventlake-race $(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...

# The fault suite: several ingest processes on one consumer group against a
# PostgreSQL catalog and an S3 server (versitygw), with kill -9, rebalances,
# S3 and catalog outages, broker restarts and racing writers; every
# scenario ends by checking that the lake holds each produced event once.
FAULTS_TIMEOUT ?= 40m
test-faults:
	$(GO) vet -tags faults ./internal/e2e/
	$(GO) test -count=1 -tags faults -run 'TestFault' -timeout $(FAULTS_TIMEOUT) -v ./internal/e2e/

# The catalog conformance suite against a REST catalog: SeaweedFS's
# built-in Iceberg REST catalog (its S3 gateway serves the warehouse).
# Building SeaweedFS takes about five minutes; CI does not run this.
SEAWEEDFS_VERSION ?= v0.0.0-20261109003541-7506e5f91cd6
test-rest:
	bash scripts/test-rest.sh $(SEAWEEDFS_VERSION)

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

fuzz:
	$(GO) test -run='^$$' -fuzz=FuzzDecode -fuzztime=60s ./schema/

# Benchmarks: prints a table and writes docs/BENCHMARKS.md (the scale-out
# figures need versitygw and PostgreSQL, as the fault suite does).
# `make bench BASELINE=<git ref>` also runs the ingest benchmark against
# that build, alternately with this one. `make bench ONLY=replay` runs only
# the benchmarks named (comma separated; `go run ./cmd/eventlake-bench -h`
# lists them) and updates their rows of the report, keeping the others.
bench: build
	@if [ -n "$(BASELINE)" ]; then scripts/build-ref.sh "$(BASELINE)" bin/eventlake-baseline; fi
	$(GO) run ./cmd/eventlake-bench -bin $(BIN) -out docs/BENCHMARKS.md -scale -compaction \
		$(if $(BASELINE),-baseline-bin bin/eventlake-baseline -baseline-label "$(BASELINE)") \
		$(if $(ONLY),-only $(ONLY))

clean:
	rm -rf bin
