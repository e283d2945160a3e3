# tagpeer: `make demo` and `make test` are all a fresh clone needs (cargo and python3).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed-$(shell sha256sum tests/requirements.txt | cut -c1-12)
LAMBDA_TARGET := aarch64-unknown-linux-gnu
CARGO_LAMBDA_VERSION := 1.9.2

PORT ?= 4566
# `make local ACCOUNTS=123456789012,222222222222`: one deployment per account (empty: one, in 123456789012).
ACCOUNTS ?=
FUNCTIONS := -p tagpeer-requester -p tagpeer-accepter -p tagpeer-router -p tagpeer-provisioner
LOCALCLOUD := PYTHONPATH=tests $(VENV)/bin/python -m localcloud

.PHONY: help venv functions demo local test lint fmt build deploy clean bench

help:
	@echo "make demo   the seed scenario (Seoul <-> Osaka) told on the local cloud, from one AWS CLI tag command"
	@echo "make test   formatting, clippy, cfn-lint, unit, property and end-to-end tests"
	@echo "make local  the local cloud in the foreground on 127.0.0.1:\$$PORT (default 4566)"
	@echo "make lint   formatting, clippy, cfn-lint and checkov only"
	@echo "make graphcheck  the pinned Mermaid and DOT parsers the tests read tagpeer graph with"
	@echo "make build  the Lambda artifacts: cargo lambda build --release --arm64"
	@echo "make deploy build and deploy a stack to each of REGIONS (the SAM CLI, your AWS credentials)"
	@echo "make bench  measure artifacts, cold starts, API calls, a mesh under throttling; write BENCHMARKS.md"

# The Python virtual environment: moto's server and cfn-lint, pinned whole.
venv: $(STAMP)
$(STAMP): tests/requirements.txt
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
	touch $@

# checkov, the template's security scan, pinned, in a virtual environment of
# its own (its pins are not moto's). Offline: no update check, no download.
# Each check the template skips carries its reason in the template's Metadata.
CHECKOV_VERSION := 3.3.30
CHECKOV_VENV := .venv-checkov
CHECKOV := $(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION)

$(CHECKOV):
	rm -rf $(CHECKOV_VENV)
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --disable-pip-version-check checkov==$(CHECKOV_VERSION)
	touch $@

include tools/graphcheck/Makefile.fragment

# The function binaries the local cloud runs, and the tagpeer command.
functions:
	cargo build --quiet --locked $(FUNCTIONS) -p tagpeer-cli

# The demo (tools/demo.py): the seed scenario told on the local cloud.
demo: venv functions
	PYTHONPATH=tests $(VENV)/bin/python tools/demo.py

local: venv functions
	$(LOCALCLOUD) --port $(PORT)$(if $(strip $(ACCOUNTS)), --accounts $(strip $(ACCOUNTS)))

lint: venv $(CHECKOV)
	cargo fmt --all -- --check
	@# The functional core compiles no AWS SDK, no async runtime, no Lambda crate.
	@! cargo tree --locked -p tagpeer-core -e normal --prefix none | grep -E '^(aws-|tokio|lambda)' \
		|| { echo "tagpeer-core depends on the AWS SDK, tokio or Lambda"; exit 1; }
	cargo clippy --workspace --all-targets --locked -- -D warnings
	$(VENV)/bin/cfn-lint infra-template/template.yaml
	CKV_SKIP_PACKAGE_UPDATE_CHECK=true BC_SKIP_MAPPING=TRUE $(CHECKOV_VENV)/bin/checkov \
		-f infra-template/template.yaml --framework cloudformation --quiet --compact --skip-download

test: lint functions graphcheck
	PYTHONPATH=tests $(VENV)/bin/python -m pytest -q -p no:cacheprovider tests/localcloud
	cargo test --workspace --locked

# `make reliability`: the crash points, lost/doubled/shuffled events, errors and
# throttling, and the bad inputs, each writing its rows into a fresh directory;
# then the table (tools/reliability_table.py), which fails on any invariant violation.
RELIABILITY_DIR = $${CARGO_TARGET_DIR:-target}/reliability/$$(date +%Y%m%d-%H%M%S)

.PHONY: reliability
reliability: venv functions
	set -e; dir="$(RELIABILITY_DIR)"; rm -rf "$$dir"; mkdir -p "$$dir"; status=0; \
	TAGPEER_RELIABILITY_DIR="$$(cd "$$dir" && pwd)" cargo test --locked -p tagpeer-tests \
		--test reliability --test bad_input --test security || status=$$?; \
	$(VENV)/bin/python tools/reliability_table.py "$$dir" || status=$$?; \
	exit $$status

fmt:
	cargo fmt --all

# cargo-lambda comes from PyPI with zig (tests/requirements.txt); the arm64 target from rustup.
build: venv
	rustup target add $(LAMBDA_TARGET)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" cargo lambda build --release --arm64 --output-format zip $(FUNCTIONS)

# `make bench`: the figures in BENCHMARKS.md (tools/bench.py). Each
# profile of BENCH_PROFILES is built for arm64 with cargo lambda (the zips) and
# for this machine with cargo (the binaries the local cloud runs), in a target
# directory of its own, one job at a time: aws-sdk-ec2 alone takes ~8 GB of
# compiler memory. BENCH_ARGS go to the script (--cold-runs N, --mesh N, --big N,
# --idle-regions 2,3,6,10, --planner-sizes 100,1000,10000,
# --no-throttle, --out FILE).
BENCH_TARGET_DIR ?= $(HOME)/.cache/tagpeer-bench-target
BENCH_JOBS ?= 1
BENCH_PROFILES ?= release release-baseline
BENCH_ARGS ?=

bench: venv
	rustup target add $(LAMBDA_TARGET)
	set -e; start=$$(date +%s); profiles=""; \
	for p in $(BENCH_PROFILES); do \
		if [ "$$p" = release ]; then sel=--release; else sel="--profile $$p"; fi; \
		PATH="$(CURDIR)/$(VENV)/bin:$$PATH" CARGO_TARGET_DIR="$(BENCH_TARGET_DIR)" CARGO_BUILD_JOBS=$(BENCH_JOBS) \
			cargo lambda build $$sel --arm64 --output-format zip --lambda-dir "$(BENCH_TARGET_DIR)/lambda-$$p" $(FUNCTIONS); \
		CARGO_TARGET_DIR="$(BENCH_TARGET_DIR)" CARGO_BUILD_JOBS=$(BENCH_JOBS) cargo build --quiet --locked $$sel $(FUNCTIONS); \
		profiles="$$profiles --profile $$p=$(BENCH_TARGET_DIR)/$$p,$(BENCH_TARGET_DIR)/lambda-$$p"; \
	done; \
	CARGO_TARGET_DIR="$(BENCH_TARGET_DIR)" CARGO_BUILD_JOBS=$(BENCH_JOBS) \
		cargo build --quiet --locked --release -p tagpeer-core --example planner; \
	PYTHONPATH=tests $(VENV)/bin/python tools/bench.py $$profiles --planner "$(BENCH_TARGET_DIR)/release/examples/planner" \
		--build-seconds "$$(( $$(date +%s) - start ))" --json "$(BENCH_TARGET_DIR)/bench.json" $(BENCH_ARGS)

# Deploying to AWS: the SAM CLI, in a virtual environment of its own (its pins
# are not moto's), builds the template's functions with cargo lambda build
# --release --arm64 and deploys one stack to each region of REGIONS.
REGIONS ?= ap-northeast-2,ap-northeast-3
STACK ?= tagpeer
ALLOWED_ACCOUNTS ?=
SCHEDULE ?= rate(10 minutes)
LOG_LEVEL ?= info
SAM_VERSION := 1.170.0
DEPLOY_VENV := .venv-deploy

$(DEPLOY_VENV)/bin/sam:
	$(PYTHON) -m venv $(DEPLOY_VENV)
	$(DEPLOY_VENV)/bin/pip install --quiet --disable-pip-version-check \
		aws-sam-cli==$(SAM_VERSION) cargo-lambda==$(CARGO_LAMBDA_VERSION)

deploy: $(DEPLOY_VENV)/bin/sam
	rustup target add $(LAMBDA_TARGET)
	cd infra-template && PATH="$(CURDIR)/$(DEPLOY_VENV)/bin:$$PATH" sam build --beta-features
	for region in $$(echo "$(REGIONS)" | tr ',' ' '); do \
		(cd infra-template && PATH="$(CURDIR)/$(DEPLOY_VENV)/bin:$$PATH" sam deploy \
			--stack-name "$(STACK)" --region "$$region" --resolve-s3 \
			--capabilities CAPABILITY_IAM CAPABILITY_NAMED_IAM CAPABILITY_AUTO_EXPAND --no-fail-on-empty-changeset --no-confirm-changeset \
			--parameter-overrides "Regions=$(REGIONS)" "AllowedAccounts=$(ALLOWED_ACCOUNTS)" \
				"Schedule=$(SCHEDULE)" "LogLevel=$(LOG_LEVEL)") || exit 1; \
	done

clean:
	cargo clean
	rm -rf $(VENV) $(DEPLOY_VENV) $(CHECKOV_VENV) $(GRAPHCHECK_VENV) $(GRAPHCHECK)/node_modules
