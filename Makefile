# ModelFleet. Every target depends on `setup`, which is idempotent and cached:
#   - a virtual environment in .venv (re-installed when pyproject.toml changes),
#   - the Kubernetes binaries, built once from Go modules into ~/.cache/modelfleet (hack/k8s-binaries.sh),
#   - Prometheus 3 and promtool, built from their Go module into the same cache (hack/prometheus.sh; the drift tests
#     run a real Prometheus that finds the dev cluster's pods with kubernetes_sd_configs),
#   - versitygw, the S3 server of the object-storage tests, built from its Go module into the same cache,
#   - Argo CD's health engine as a small program (hack/argocd-health.sh), for the health-check tests,
#   - Kueue and its CRDs (hack/kueue.sh), which the dev cluster starts for the queueing tests,
#   - Karpenter's KWOK provider and its CRDs (hack/karpenter.sh), for the node-provisioning tests.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMPS := .make
PYTEST_ARGS ?=

.PHONY: setup k8s-binaries versitygw argocd-health kueue karpenter prometheus images kind-up deploy kind-e2e kind-down manifests lint verify test test-unit test-integration demo clean

# The parts are independent (each build script holds its own lock and cache directory), so they run side by side:
# module downloads, pip's install and the single-threaded link steps overlap the compiles.
# `make test` needs the first four before any test; the last three serve a few tests each, so it builds them in the
# background at the lowest priority while the tests run: a test that needs one runs its build script, which waits for
# the build under way (the script's lock) or reuses the finished one. README: the cold figures.
SETUP_CORE := $(STAMPS)/venv k8s-binaries prometheus versitygw
SETUP_LATER := kueue karpenter argocd-health
SETUP_JOBS ?= 4
setup:
	@$(MAKE) --no-print-directory -j$(SETUP_JOBS) $(SETUP_CORE) $(SETUP_LATER)

$(STAMPS)/venv: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,trainer,server]'
	@mkdir -p $(STAMPS) && touch $@

k8s-binaries:
	@bash hack/k8s-binaries.sh >/dev/null

versitygw:
	@bash hack/versitygw.sh >/dev/null

argocd-health:
	@bash hack/argocd-health.sh >/dev/null

kueue:
	@bash hack/kueue.sh >/dev/null

karpenter:
	@bash hack/karpenter.sh >/dev/null

prometheus:
	@bash hack/prometheus.sh >/dev/null

# CRDs (and the chart's copy) are generated from the pydantic models in operator/modelfleet/api.
CRD_DIRS := --out crds --out charts/modelfleet/crds --out manifests/crd

# One source each: CRDs from the pydantic models, RBAC from api/rbac.py, the alert rules from manifests/prometheus; the
# kustomize install's Deployment and Service are rendered from the chart.

manifests: $(STAMPS)/venv k8s-binaries
	$(PY) -m modelfleet.api.crdgen $(CRD_DIRS)
	$(PY) -m modelfleet.api.rbac
	$(PY) -m modelfleet.api.access
	cp manifests/prometheus/rules.yaml charts/modelfleet/files/prometheus-rules.yaml
	$(PY) hack/render_default.py
	PY=$(CURDIR)/$(PY) bash hack/proto.sh

lint: $(STAMPS)/venv
	$(VENV)/bin/ruff check operator tests hack bench
	$(VENV)/bin/ruff format --check operator tests hack bench
	$(VENV)/bin/mypy

# Fails when the committed CRDs differ from what the models generate, or on lint and type errors.
verify: lint
	$(PY) -m modelfleet.api.crdgen --check $(CRD_DIRS)
	$(PY) -m modelfleet.api.rbac --check
	$(PY) -m modelfleet.api.access --check
	PY=$(CURDIR)/$(PY) bash hack/proto.sh --check
	@cmp -s manifests/prometheus/rules.yaml charts/modelfleet/files/prometheus-rules.yaml \
	  || { echo "charts/modelfleet/files/prometheus-rules.yaml differs: run make manifests" >&2; exit 1; }

test:
	@$(MAKE) --no-print-directory -j$(SETUP_JOBS) $(SETUP_CORE)
	@mkdir -p $(STAMPS)
	@nice -n 19 $(MAKE) --no-print-directory -j2 $(SETUP_LATER) >$(STAMPS)/background-builds.log 2>&1 & later=$$!; \
	  status=0; { $(MAKE) --no-print-directory verify && $(PY) -m pytest $(PYTEST_ARGS); } || status=$$?; \
	  wait $$later || { echo "background builds failed: $(STAMPS)/background-builds.log" >&2; tail -n 20 $(STAMPS)/background-builds.log >&2; status=1; }; \
	  exit $$status

test-unit: $(STAMPS)/venv
	$(PY) -m pytest -m unit $(PYTEST_ARGS)

test-integration: setup
	$(PY) -m pytest -m "integration or e2e" $(PYTEST_ARGS)

demo: setup
	$(PY) hack/demo.py

# Container images (need a Docker engine; none runs on the project's own machines, so these are not built in CI).
IMAGE_TAG ?= 0.1.0
IMAGE_REPO ?= ghcr.io/modelfleet
images:
	@docker info >/dev/null 2>&1 || { echo "images: no Docker engine is running here (docker info failed)" >&2; exit 1; }
	docker build -f images/operator.Dockerfile -t $(IMAGE_REPO)/operator:$(IMAGE_TAG) .
	docker build -f images/trainer.Dockerfile -t $(IMAGE_REPO)/trainer:$(IMAGE_TAG) .
	docker build -f images/trainer-cuda.Dockerfile -t $(IMAGE_REPO)/trainer:$(IMAGE_TAG)-cuda12.4 .
	docker build -f images/server.Dockerfile -t $(IMAGE_REPO)/server:$(IMAGE_TAG) .

# kind, for users with Docker (skipped with a message where no Docker engine runs).
kind-up:
	@bash hack/kind.sh up
deploy: images
	@IMAGE_TAG=$(IMAGE_TAG) bash hack/kind.sh deploy
kind-e2e:
	@bash hack/kind.sh e2e
kind-down:
	@bash hack/kind.sh down

clean:
	-$(PY) -m modelfleet dev-cluster down
	rm -rf $(STAMPS) $(VENV)
