# The template repository's commands. A fresh machine needs only `make demo` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

export UV_CACHE_DIR ?= $(CURDIR)/.cache/uv
export DVC_NO_ANALYTICS := 1
export MLFLOW_DISABLE_TELEMETRY := true
export BENTOML_DO_NOT_TRACK := true
export PATH := $(HOME)/.local/bin:$(PATH)
PYTEST := .venv/bin/pytest

.PHONY: help
help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

.PHONY: tools
tools: ## Install everything the demo and the tests need (uv, dev venv, system tools)
	@scripts/bootstrap.sh

.PHONY: test
test: tools ## Run the whole test suite (slow end-to-end tests included)
	$(PYTEST) -n 2 --dist loadgroup --durations=30

.PHONY: test-fast
test-fast: tools ## Run the quick subset (no venvs, trainings or pipelines)
	$(PYTEST) -m "not slow" -n 2

.PHONY: demo
demo: tools ## Generate a sample project into demo/ and run its pipeline on embedded defaults
	.venv/bin/python scripts/demo.py

.PHONY: lock
lock: tools ## Re-lock the generated project's dependencies (uv.lock inside the template)
	.venv/bin/python scripts/lock_project.py

.PHONY: clean
clean: ## Remove generated demo output and caches
	rm -rf demo .cache .pytest_cache
