# Build, test and run the credential broker. `make help` lists the targets.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

GO        ?= go
FUNCTIONS := credentials projector replay revoker
BUILD_DIR := build
# SAM's conventions for Go on provided.al2023/arm64.
LAMBDA_ENV   := GOOS=linux GOARCH=arm64 CGO_ENABLED=0
LAMBDA_FLAGS := -tags lambda.norpc -trimpath -ldflags "-s -w"
# Go packages under test; TEST_FLAGS adds flags (e.g. TEST_FLAGS=-run=Projector).
TEST_FLAGS ?=
BENCH      ?= .
# The race detector sleeps a second before a test binary exits, so that
# goroutines still running can show their races (GORACE's atexit_sleep_ms,
# default 1000). With 38 test binaries a tier, that is about 19 s of each
# tier on two cores spent asleep; 10 ms still gives them a moment.
GORACE ?= atexit_sleep_ms=10
export GORACE

.PHONY: help
help: ## List the targets.
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*?## "}{printf "  %-17s %s\n",$$1,$$2}'

.PHONY: build cli
build: $(FUNCTIONS:%=$(BUILD_DIR)/%.zip) $(BUILD_DIR)/credbroker ## Build one arm64 bootstrap per function, zipped for Lambda, and build/credbroker for this machine.

cli: $(BUILD_DIR)/credbroker ## Build only build/credbroker, the command-line tool, for this machine (seconds once the Go build cache is warm).

$(BUILD_DIR)/credbroker: FORCE
	$(GO) build -trimpath -o $@ ./cmd/credbroker
	@echo "built $@"

$(BUILD_DIR)/%.zip: FORCE
	@mkdir -p $(BUILD_DIR)/$*
	$(LAMBDA_ENV) $(GO) build $(LAMBDA_FLAGS) -o $(BUILD_DIR)/$*/bootstrap ./functions/$*
	@rm -f $@ && (cd $(BUILD_DIR)/$* && zip -q -X ../$*.zip bootstrap)
	@echo "built $@"

# sam build calls build-<LogicalId> with ARTIFACTS_DIR set (BuildMethod:
# makefile); samconfig.toml builds in the source tree, so SAM does not copy
# the project (build/ and .local/ included) once per function first.
build-CredentialsFunction: ; $(LAMBDA_ENV) $(GO) build $(LAMBDA_FLAGS) -o "$(ARTIFACTS_DIR)/bootstrap" ./functions/credentials
build-ProjectorFunction:   ; $(LAMBDA_ENV) $(GO) build $(LAMBDA_FLAGS) -o "$(ARTIFACTS_DIR)/bootstrap" ./functions/projector
build-ReplayFunction:      ; $(LAMBDA_ENV) $(GO) build $(LAMBDA_FLAGS) -o "$(ARTIFACTS_DIR)/bootstrap" ./functions/replay
build-RevokerFunction:     ; $(LAMBDA_ENV) $(GO) build $(LAMBDA_FLAGS) -o "$(ARTIFACTS_DIR)/bootstrap" ./functions/revoker

# Tests come in two tiers. The unit tier needs nothing but Go: the logic
# runs on in-memory fakes (internal/testkit). The integration tier (build
# tag `integration`) adds the tests that need moto_server or cfn-lint and
# runs the same logic against the real adapters on moto.
INTEGRATION := -tags integration

.PHONY: lint
lint: ## gofmt, go vet and staticcheck (dead code included) on both tiers, cfn-lint on template.yaml.
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet $(INTEGRATION) ./...
	$(GO) tool staticcheck ./...
	$(GO) tool staticcheck $(INTEGRATION) ./...
	@command -v cfn-lint >/dev/null || { echo "cfn-lint not found: pip install cfn-lint"; exit 1; }
	cfn-lint template.yaml

.PHONY: test-unit
test-unit: ## The unit tier: every test that needs no emulator (no moto_server, no cfn-lint), under 2 minutes on 2 cores.
	$(GO) test -race -count=1 $(TEST_FLAGS) ./...

.PHONY: test
test: lint test-unit test-web web ## Lint, the unit tier, web/'s tests, then the integration tier (Chromium on the demo page included) against a fresh moto_server on a free port.
	@command -v moto_server >/dev/null || { echo "moto_server not found on PATH: pip install 'moto[server]==5.2.1'"; exit 1; }
	$(GO) run ./internal/cmd/withmoto -- $(GO) test -race -count=1 $(INTEGRATION) $(TEST_FLAGS) ./...

# ---------------------------------------------- web
# The browser module and its demo page (web/README.md) need Node.js 20 or
# later with npm. `npm ci` installs the exact versions of package-lock.json;
# it runs again when package-lock.json or package.json is newer than the
# install it made (node_modules/.package-lock.json).
NPM         ?= npm
WEB_SOURCES := $(shell find web/src web/demo -type f 2>/dev/null) web/build.mjs web/package.json
define need_node
	@command -v node >/dev/null && command -v $(NPM) >/dev/null || { echo "Node.js and npm not found: install Node.js 20 or later with npm (Debian: apt-get install nodejs npm)"; exit 1; }
	@node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' || { echo "Node.js $$(node --version) is too old: web/ needs Node.js 20 or later"; exit 1; }
endef

web/node_modules/.package-lock.json: web/package-lock.json web/package.json
	$(need_node)
	cd web && $(NPM) ci --no-audit --no-fund
	@touch $@

web/dist/demo/index.html: web/node_modules/.package-lock.json $(WEB_SOURCES)
	$(need_node)
	cd web && $(NPM) run build
	@touch $@

.PHONY: web test-web
web: web/dist/demo/index.html ## Build the browser module and the demo page into web/dist (Node.js 20+ and npm; runs npm ci when needed).

test-web: web/node_modules/.package-lock.json ## web/'s checks and tests: prettier, tsc, node --test.
	$(need_node)
	cd web && $(NPM) test

# The demo page's screenshot in docs/: TestTheDemoPageInChromium signs in to
# the page of a seeded local stack (its own, on free ports) in headless
# Chromium, with a time-bounded grant, and writes the screenshot at its end.
.PHONY: demo-screenshot
demo-screenshot: web ## Retake docs/demo-page.png: the demo page of a seeded local stack, signed in, in headless Chromium (chromium, moto_server).
	@command -v moto_server >/dev/null || { echo "moto_server not found on PATH: pip install 'moto[server]==5.2.1'"; exit 1; }
	BROWSER_TESTS= DEMO_SCREENSHOT='$(CURDIR)/docs/demo-page.png' $(GO) run ./internal/cmd/withmoto -- \
	  $(GO) test $(INTEGRATION) -count=1 -run='^TestTheDemoPageInChromium$$' ./internal/localstack/
	@echo "wrote docs/demo-page.png"

.PHONY: bench
bench: ## Run the benchmarks (against moto where they need AWS).
	$(GO) run ./internal/cmd/withmoto -- $(GO) test $(INTEGRATION) -run='^$$' -bench='$(BENCH)' -benchmem ./...

# Issue 21's organisation-scale revocation run on the local stack (the real
# functions, the revoker fed in batches two at once): 45 narrowings one a
# second, then a bucket removal narrowing a 200-member project; it logs the
# times to deny and the revoker's runs and IAM writes (docs/benchmarks.md
# "Revocation at organisation scale (issue 21)").
.PHONY: revocation-scale
revocation-scale: ## 45 narrowings one a second, then one narrowing 200 users, on the local stack; logs the times to deny (docs/benchmarks.md).
	$(GO) run ./internal/cmd/withmoto -- $(GO) test $(INTEGRATION) -count=1 -v -run='^TestRevocationAtOrganisationScale$$' ./internal/localstack/

.PHONY: deploy
# PARAMS are the deploy's parameter overrides (Key=Value ...): the preflight
# checks them against the account's Lambda concurrency first, then the guided
# deploy offers them as its answers. CREDENTIALS_FUNCTION (the
# CredentialsFunctionName output) gives a redeploy's reservation back.
PARAMS               ?=
CREDENTIALS_FUNCTION ?=
deploy: ## credbroker admin preflight, then sam build && sam deploy --guided (PARAMS='Key=Value ...'; needs the SAM CLI and AWS credentials; not run in CI).
	@command -v sam >/dev/null || { echo "the SAM CLI is not installed: https://docs.aws.amazon.com/serverless-application-model/latest/developerguide/install-sam-cli.html"; exit 1; }
	$(GO) run ./cmd/credbroker admin preflight $(if $(CREDENTIALS_FUNCTION),--credentials-function '$(CREDENTIALS_FUNCTION)') $(PARAMS)
	sam build && sam deploy --guided $(if $(PARAMS),--parameter-overrides $(PARAMS))

.PHONY: smoke
# The post-deployment smoke check (docs/operations.md "Smoke check"): a throwaway user
# signs in, fetches credentials, writes and reads an object, loses its
# membership; the check measures the seconds until the old credentials are
# denied, cleans up and prints the figures. STACK_NAME=<name> with
# SMOKE_BUCKET=<bucket> runs it on a deployed stack (AWS credentials; not
# run in CI); without STACK_NAME it runs on a local stack of its own on free
# ports, its S3 calls judged by the IAM evaluator in front of moto. Exit
# status 0 passed, 1 failed, 2 usage.
STACK_NAME   ?=
SMOKE_BUCKET ?=
SMOKE_FLAGS  ?=
smoke: ## Post-deployment smoke check (STACK_NAME=<name> SMOKE_BUCKET=<bucket> on AWS; no STACK_NAME: a local stack of its own; SMOKE_FLAGS=-deny-timeout=120s).
	@$(GO) build -o $(BUILD_DIR)/smoke ./internal/cmd/smoke
	@exec $(BUILD_DIR)/smoke $(if $(STACK_NAME),-stack-name '$(STACK_NAME)') $(if $(SMOKE_BUCKET),-bucket '$(SMOKE_BUCKET)') $(SMOKE_FLAGS)

.PHONY: run
run: ## The whole system on loopback until Ctrl-C, with the demo page (MOTO_PORT=4566 PORT=8080 WEB_PORT=8081 LAMBDA_PORT=8082 SEED=1 AUDIT_TAIL=1 ARCHIVE=1).
	@# Without Node.js the stack still runs; it says that the page is not served.
	@if command -v node >/dev/null && command -v $(NPM) >/dev/null; then \
	  $(MAKE) --no-print-directory web || echo "The demo page could not be built (see above); the stack runs without it."; \
	else echo "Node.js and npm not found: the demo page is not built (install Node.js 20+ with npm for it; the API runs without it)."; fi
	@echo "Building $(BUILD_DIR)/localstack (the first build compiles the AWS SDK and takes a minute or two; later ones take seconds)..."
	@$(GO) build -o $(BUILD_DIR)/localstack ./internal/cmd/localstack
	@exec $(BUILD_DIR)/localstack

.PHONY: FORCE
FORCE:

# ---------------------------------------------- rebuild, verify, replay
# On the running local stack (`make run`), through `credbroker admin`; the
# same commands work against a deployed stack (credbroker help). The binary
# is built and run directly so that its exit status (0 ok, 1 drift, 2 usage,
# 3 failure) is what make reports as "Error N"; make itself then exits 2,
# so scripts that need N run build/credbroker themselves.
STACK_FILE ?= .local/stack.json
SINCE      ?=
define admin_tool
	@test -f $(STACK_FILE) || { echo "$(STACK_FILE) not found: start the local stack with \`make run\` first"; exit 2; }
	@echo "Building $(BUILD_DIR)/credbroker..." >&2
	@$(GO) build -trimpath -o $(BUILD_DIR)/credbroker ./cmd/credbroker
	@exec $(BUILD_DIR)/credbroker admin $(1) --stack $(STACK_FILE) $(2)
endef

.PHONY: rebuild verify replay
rebuild: ## Recompute every user of the local stack's policy table (safe while it runs, idempotent): credbroker admin rebuild.
	$(call admin_tool,rebuild)

verify: ## Compare the local stack's policy table with a recomputation; exit status 1 on drift: credbroker admin verify.
	$(call admin_tool,verify)

replay: ## Replay the local stack's membership stream through the projector (SINCE=<RFC 3339> skips older records): credbroker admin replay.
	$(call admin_tool,replay,$(if $(SINCE),--since '$(SINCE)'))

# ---------------------------------------------- load
# `make load` starts its own moto and local stack in this process, on free
# ports, with a proxy between them that counts the stack's AWS calls and
# injects FAULTS; STACK=.local/stack.json loads a stack started by
# `make run` instead (no call counts, no faults). docs/benchmarks.md "Load". The binary
# is run directly so that its exit status (0 ok, 1 an invariant broke,
# 2 usage, 3 setup failure) is what make reports.
CLIENTS      ?= 16
USERS        ?= 20
DURATION     ?= 60s
CHANGE_EVERY ?= 1s
FAULTS       ?=
STACK        ?=
LOAD_FLAGS   ?=

.PHONY: load
load: ## Load the endpoint while a writer changes grants (CLIENTS=16 USERS=20 DURATION=60s CHANGE_EVERY=1s FAULTS=<spec> STACK=<file> LOAD_FLAGS=-json).
	@$(GO) build -o $(BUILD_DIR)/load ./internal/cmd/load
	@exec $(BUILD_DIR)/load -clients $(CLIENTS) -users $(USERS) -duration $(DURATION) -change-every $(CHANGE_EVERY) \
	  $(if $(FAULTS),-faults '$(FAULTS)') $(if $(STACK),-stack '$(STACK)') $(LOAD_FLAGS)

.PHONY: revoke
revoke: ## Revoke every current session of USER=<userId> on the local stack (docs/security.md "Revoking a user").
	@# USER also comes from the shell's environment: only one given here counts.
	@test "$(origin USER)" = "command line" || { echo "usage: make revoke USER=<userId> (the user's Cognito sub)"; exit 2; }
	$(call admin_tool,revoke,--user '$(USER)')
