# Glint developer tasks. `make help` lists them.
GO       ?= go
FUZZTIME ?= 30s
TOOL     := $(GO) tool -modfile=tools/go.mod
# Go 1.26.8, the newest 1.26 this project's machines have, carries standard
# library vulnerabilities (net/http, crypto/tls, crypto/x509, html/template)
# that govulncheck reports; Go 1.27.3 fixes them. The go command fetches it
# through the module proxy once (about 76 MB) and keeps it.
export GOTOOLCHAIN ?= go1.27.3

.PHONY: help run build test quick test-deps vet lint vuln bench fuzz clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

run: ## run one node with embedded defaults and the web pages (prints URLs and the demo key)
	$(GO) run ./cmd/glint serve

build: ## build bin/glint
	$(GO) build -trimpath -o bin/glint ./cmd/glint

# Every test runs. The browser tests run in their own pass without the race
# detector: they measure real-time rendering while Chromium encodes three
# software layers on the same cores, and a race-instrumented server is
# several times slower per packet. The server paths they use are race-tested
# by the pion end-to-end tests in the first pass.
test: test-deps lint vuln ## install what the tests need, lint, govulncheck, then run every test (with the race detector)
	$(GO) test -race -count=1 -p 1 -timeout 15m -skip '^TestBrowser' ./...
	$(GO) test -count=1 -timeout 10m -run '^TestBrowser' ./cmd/glint/

quick: ## the fast loop: every test but the browser and multi-process ones, no race detector
	$(GO) test -short -count=1 ./...

test-deps: ## install the tools tests use (Chromium, Firefox, ffmpeg, redis-server, iproute2) when missing
	@./scripts/test-deps.sh

vet: ## go vet and gofmt
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

lint: vet ## vet, golangci-lint (.golangci.yml), go.mod tidy, import-direction and package-doc rules
	$(GO) mod tidy -diff
	$(TOOL) golangci-lint run ./...
	$(GO) test -count=1 ./internal/archtest/

vuln: ## govulncheck against the Go vulnerability database pinned in tools/go.mod
	@GO="$(GO)" ./scripts/vuln.sh

bench: ## forwarding hot-path benchmarks (ns and allocations per forwarded packet)
	$(GO) test -run '^$$' -bench . -benchmem -count 3 ./sfu/

fuzz: ## run every fuzz target for FUZZTIME each
	$(GO) test ./sfu/ -run '^$$' -fuzz '^FuzzIngest$$' -fuzztime $(FUZZTIME)
	$(GO) test ./sfu/ -run '^$$' -fuzz '^FuzzFeedback$$' -fuzztime $(FUZZTIME)
	$(GO) test ./sfu/peer/ -run '^$$' -fuzz '^FuzzParseOffer$$' -fuzztime $(FUZZTIME)
	$(GO) test ./sfu/peer/lite/ -run '^$$' -fuzz '^FuzzTransportPacket$$' -fuzztime $(FUZZTIME)
	$(GO) test ./signaling/ -run '^$$' -fuzz '^FuzzParseFragment$$' -fuzztime $(FUZZTIME)
	$(GO) test ./signaling/ -run '^$$' -fuzz '^FuzzInviteToken$$' -fuzztime $(FUZZTIME)
	$(GO) test ./ingest/ -run '^$$' -fuzz '^FuzzStreamID$$' -fuzztime $(FUZZTIME)
	$(GO) test ./ingest/ -run '^$$' -fuzz '^FuzzVideoParams$$' -fuzztime $(FUZZTIME)
	$(GO) test ./chat/ -run '^$$' -fuzz '^FuzzReceive$$' -fuzztime $(FUZZTIME)
	$(GO) test ./chat/ -run '^$$' -fuzz '^FuzzMemoryLoad$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/codec/ -run '^$$' -fuzz '^FuzzAssemble$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/codec/ -run '^$$' -fuzz '^FuzzInspect$$' -fuzztime $(FUZZTIME)
	$(GO) test ./hlsbridge/ -run '^$$' -fuzz '^FuzzPictureSize$$' -fuzztime $(FUZZTIME)

clean: ## remove build outputs
	rm -rf bin
