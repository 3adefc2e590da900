# ModelFleet. Every target depends on `setup`, which is idempotent and cached:
#   - a virtual environment in .venv (re-installed when pyproject.toml changes),
#   - the Kubernetes binaries, built once from Go modules into ~/.cache/modelfleet (hack/k8s-binaries.sh).
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMPS := .make
PYTEST_ARGS ?=

.PHONY: setup k8s-binaries lint verify test test-unit test-integration demo clean

setup: $(STAMPS)/venv k8s-binaries

$(STAMPS)/venv: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@mkdir -p $(STAMPS) && touch $@

k8s-binaries:
	@bash hack/k8s-binaries.sh >/dev/null

lint: $(STAMPS)/venv
	$(VENV)/bin/ruff check operator tests hack
	$(VENV)/bin/ruff format --check operator tests hack
	$(VENV)/bin/mypy

verify: lint

test: setup verify
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: $(STAMPS)/venv
	$(PY) -m pytest -m unit $(PYTEST_ARGS)

test-integration: setup
	$(PY) -m pytest -m "integration or e2e" $(PYTEST_ARGS)

demo: setup
	$(PY) hack/demo.py

clean:
	-$(PY) -m modelfleet dev-cluster down
	rm -rf $(STAMPS) $(VENV)
