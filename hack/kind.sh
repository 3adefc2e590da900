#!/usr/bin/env bash
# kind for users with Docker: `hack/kind.sh up|deploy|e2e|down`. Where no Docker engine runs, every step says so and
# exits 0 (skipped), so `make kind-*` is safe everywhere.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CLUSTER="${KIND_CLUSTER:-modelfleet}"
KIND_VERSION="${KIND_VERSION:-v0.27.0}"
TAG="${IMAGE_TAG:-0.1.0}"
CACHE="${MODELFLEET_CACHE_DIR:-$HOME/.cache/modelfleet}/kind/$KIND_VERSION"

if ! docker info >/dev/null 2>&1; then
  echo "kind: skipped: no Docker engine is running here (docker info failed); kind needs one" >&2
  exit 0
fi
if [ ! -x "$CACHE/kind" ]; then
  echo "kind: building sigs.k8s.io/kind@$KIND_VERSION from the Go module proxy into $CACHE" >&2
  GOBIN="$CACHE" go install "sigs.k8s.io/kind@$KIND_VERSION"
fi
KIND="$CACHE/kind"
BIN="$(bash "$ROOT/hack/k8s-binaries.sh" | tail -1)"
HELM="$BIN/helm"
KUBECTL="$BIN/kubectl"

case "${1:-}" in
  up)
    "$KIND" get clusters | grep -qx "$CLUSTER" || "$KIND" create cluster --name "$CLUSTER" --wait 120s
    ;;
  deploy)
    for image in operator trainer server; do
      "$KIND" load docker-image --name "$CLUSTER" "ghcr.io/modelfleet/$image:$TAG"
    done
    "$KUBECTL" --context "kind-$CLUSTER" apply --server-side -f "$ROOT/crds/"
    "$HELM" upgrade --install modelfleet "$ROOT/charts/modelfleet" --kube-context "kind-$CLUSTER" \
      --namespace modelfleet-system --create-namespace --wait \
      --set image.tag="$TAG" --set image.pullPolicy=Never
    ;;
  e2e)
    # A smoke test on kind: the operator is up and a model is accepted and reconciled.
    "$KUBECTL" --context "kind-$CLUSTER" -n modelfleet-system rollout status deployment/modelfleet-operator --timeout=120s
    "$KUBECTL" --context "kind-$CLUSTER" create namespace ml --dry-run=client -o yaml | "$KUBECTL" --context "kind-$CLUSTER" apply -f -
    "$KUBECTL" --context "kind-$CLUSTER" -n ml apply -f "$ROOT/manifests/samples/sklearn-classifier.yaml"
    "$KUBECTL" --context "kind-$CLUSTER" -n ml wait --for=jsonpath='{.status.observedGeneration}'=1 mlm --all --timeout=120s
    "$KUBECTL" --context "kind-$CLUSTER" -n ml get mlm,tj
    ;;
  down)
    "$KIND" delete cluster --name "$CLUSTER"
    ;;
  *)
    echo "usage: hack/kind.sh up|deploy|e2e|down" >&2
    exit 2
    ;;
esac
