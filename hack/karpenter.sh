#!/usr/bin/env bash
# Builds Karpenter's KWOK provider (sigs.k8s.io/karpenter, main package sigs.k8s.io/karpenter/kwok) into a versioned
# cache directory outside the repo, with its CRDs (NodePool, NodeClaim, NodeOverlay, KWOKNodeClass...) copied from the
# same module. The dev cluster starts it on demand (`modelfleet dev-cluster karpenter`): Karpenter provisions nodes
# for pending pods and removes empty ones, and the nodes it makes are simulated by the dev cluster's KWOK.
#
# Karpenter v1.15 needs a newer Go than the project's machines have: the go command fetches go1.27.3 through the
# module proxy (GOTOOLCHAIN below).
#
# Prints the directory holding `karpenter-kwok` and `crds/` as its last line of stdout. Idempotent: a complete cache
# is reused. MODELFLEET_KARPENTER_DIR pointing at such a directory skips the build.
set -euo pipefail
export GOTOOLCHAIN=${MODELFLEET_KARPENTER_GOTOOLCHAIN:-go1.27.3}

KARPENTER_VERSION=${MODELFLEET_KARPENTER_VERSION:-v1.15.0}
CACHE_ROOT=${MODELFLEET_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/modelfleet}

say() { echo "karpenter: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }
# shellcheck source=lib/go-build.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/go-build.sh"

complete() { [ -x "$1/karpenter-kwok" ] && [ -f "$1/crds/karpenter.sh_nodepools.yaml" ]; }

if [ -n "${MODELFLEET_KARPENTER_DIR:-}" ]; then
  complete "$MODELFLEET_KARPENTER_DIR" \
    || die "MODELFLEET_KARPENTER_DIR=$MODELFLEET_KARPENTER_DIR lacks an executable karpenter-kwok and crds/"
  echo "$MODELFLEET_KARPENTER_DIR"; exit 0
fi
OUT="$CACHE_ROOT/karpenter/$KARPENTER_VERSION"
reuse_or_lock karpenter "$OUT/bin"
mkdir -p "$OUT/bin" "$OUT/work"
START=$(date +%s)
say "building Karpenter's KWOK provider $KARPENTER_VERSION into $OUT/bin (several minutes on two cores)"
build_simple karpenter-kwok sigs.k8s.io/karpenter "$KARPENTER_VERSION" sigs.k8s.io/karpenter/kwok "$OUT/bin" "$OUT/work" \
  || die "Karpenter $KARPENTER_VERSION failed to build; see the log named above"
run "copy Karpenter's CRDs" "$OUT/work/crds.log" bash -c "
  dir=\$(cd '$OUT/work/karpenter-kwok' && go mod download -json sigs.k8s.io/karpenter@$KARPENTER_VERSION | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"Dir\"])')
  rm -rf '$OUT/bin/crds.tmp' && mkdir -p '$OUT/bin/crds.tmp'
  cp \"\$dir\"/kwok/charts/crds/*.yaml \"\$dir\"/kwok/apis/crds/*.yaml '$OUT/bin/crds.tmp/'
  chmod u+w '$OUT/bin/crds.tmp'/*.yaml" || die "copying Karpenter's CRDs failed; see the log named above"
rm -rf "$OUT/bin/crds" && mv "$OUT/bin/crds.tmp" "$OUT/bin/crds"
say "done in $(( $(date +%s) - START ))s"
echo "$OUT/bin"
