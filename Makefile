# ModelFleet. Every target depends on `setup`, which is idempotent and cached:
#   - a virtual environment in .venv (re-installed when pyproject.toml changes),
#   - the Kubernetes binaries, built once from Go modules into ~/.cache/modelfleet (hack/k8s-binaries.sh),
#   - Prometheus and promtool from Debian's package (hack/prometheus.sh; the drift tests run a real Prometheus).
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMPS := .make
PYTEST_ARGS ?=

.PHONY: setup k8s-binaries prometheus manifests lint verify test test-unit test-integration demo clean

setup: $(STAMPS)/venv k8s-binaries prometheus

$(STAMPS)/venv: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,trainer,server]'
	@mkdir -p $(STAMPS) && touch $@

k8s-binaries:
	@bash hack/k8s-binaries.sh >/dev/null

prometheus:
	@bash hack/prometheus.sh

# CRDs (and the chart's copy) are generated from the pydantic models in operator/modelfleet/api.
CRD_DIRS := --out crds --out charts/modelfleet/crds

manifests: $(STAMPS)/venv
	$(PY) -m modelfleet.api.crdgen $(CRD_DIRS)

lint: $(STAMPS)/venv
	$(VENV)/bin/ruff check operator tests hack bench
	$(VENV)/bin/ruff format --check operator tests hack bench
	$(VENV)/bin/mypy

# Fails when the committed CRDs differ from what the models generate, or on lint and type errors.
verify: lint
	$(PY) -m modelfleet.api.crdgen --check $(CRD_DIRS)

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
