# tagpeer: `make demo` and `make test` are all a fresh clone needs (cargo and python3).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed-$(shell sha256sum tests/requirements.txt | cut -c1-12)
LAMBDA_TARGET := aarch64-unknown-linux-gnu
CARGO_LAMBDA_VERSION := 1.9.2

.PHONY: help venv demo test lint fmt build clean

help:
	@echo "make demo   the seed scenario (Seoul <-> Osaka) on a local moto server, step by step"
	@echo "make test   formatting, clippy, cfn-lint, unit, property and end-to-end tests"
	@echo "make lint   formatting, clippy and cfn-lint only"
	@echo "make build  the Lambda artifacts: cargo lambda build --release --arm64"

# The Python virtual environment: moto's server and cfn-lint, pinned whole.
venv: $(STAMP)
$(STAMP): tests/requirements.txt
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
	touch $@

demo: venv
	cargo run --quiet -p tagpeer-tests --bin demo

lint: venv
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings
	$(VENV)/bin/cfn-lint infra-template/template.yaml

test: lint
	cargo test --workspace --locked

fmt:
	cargo fmt --all

# cargo-lambda comes from PyPI (it brings zig); the arm64 target from rustup.
$(VENV)/bin/cargo-lambda: $(STAMP)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check cargo-lambda==$(CARGO_LAMBDA_VERSION)

build: $(VENV)/bin/cargo-lambda
	rustup target add $(LAMBDA_TARGET)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" cargo lambda build --release --arm64 --output-format zip \
		-p tagpeer-requester -p tagpeer-accepter -p tagpeer-router

clean:
	cargo clean
	rm -rf $(VENV)
