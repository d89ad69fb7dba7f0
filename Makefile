# Glint developer tasks. `make help` lists them.
GO       ?= go
FUZZTIME ?= 30s

.PHONY: help run build test test-deps vet lint bench fuzz clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

run: ## run one node with embedded defaults and the web pages (prints URLs and the demo key)
	$(GO) run ./cmd/glint serve

build: ## build bin/glint
	$(GO) build -trimpath -o bin/glint ./cmd/glint

# Every test runs. The browser test runs in its own pass without the race
# detector: it measures real-time rendering while Chromium encodes three
# software layers on the same cores, and a race-instrumented server is
# several times slower per packet. The server paths it uses are race-tested
# by the pion end-to-end tests in the first pass.
test: test-deps vet ## install what the tests need, then run every test (with the race detector)
	$(GO) test -race -count=1 -p 1 -timeout 15m -skip '^TestBrowser' ./...
	$(GO) test -count=1 -timeout 10m -run '^TestBrowser' ./cmd/glint/

test-deps: ## install the tools tests use (Chromium, ffmpeg, redis-server) when missing
	@./scripts/test-deps.sh

vet: ## go vet and gofmt
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

lint: vet ## vet plus the import-direction and package-doc rules
	$(GO) test -count=1 ./internal/archtest/

bench: ## forwarding hot-path benchmarks (ns and allocations per forwarded packet)
	$(GO) test -run '^$$' -bench . -benchmem -count 3 ./sfu/

fuzz: ## run every fuzz target for FUZZTIME each
	$(GO) test ./sfu/ -run '^$$' -fuzz '^FuzzIngest$$' -fuzztime $(FUZZTIME)
	$(GO) test ./sfu/ -run '^$$' -fuzz '^FuzzFeedback$$' -fuzztime $(FUZZTIME)
	$(GO) test ./sfu/peer/ -run '^$$' -fuzz '^FuzzParseOffer$$' -fuzztime $(FUZZTIME)
	$(GO) test ./sfu/peer/ -run '^$$' -fuzz '^FuzzViewerPacket$$' -fuzztime $(FUZZTIME)
	$(GO) test ./signaling/ -run '^$$' -fuzz '^FuzzParseFragment$$' -fuzztime $(FUZZTIME)
	$(GO) test ./chat/ -run '^$$' -fuzz '^FuzzReceive$$' -fuzztime $(FUZZTIME)

clean: ## remove build outputs
	rm -rf bin
