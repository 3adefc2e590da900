#!/usr/bin/env bash
# Builds Kueue (sigs.k8s.io/kueue, cmd/kueue) into a versioned cache directory outside the repo, with its CRDs copied
# from the same module (config/components/crd/bases). The dev cluster starts it on demand (`modelfleet dev-cluster
# kueue`), so TrainingJobs are admitted by the real Kueue, quota and all.
#
# Prints the directory holding `kueue` and `crds/` as its last line of stdout. Idempotent: a complete cache is
# reused. MODELFLEET_KUEUE_DIR pointing at such a directory skips the build.
set -euo pipefail

KUEUE_VERSION=${MODELFLEET_KUEUE_VERSION:-v0.17.0}
CACHE_ROOT=${MODELFLEET_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/modelfleet}

say() { echo "kueue: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }
# shellcheck source=lib/go-build.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/go-build.sh"

complete() { [ -x "$1/kueue" ] && [ -f "$1/crds/kueue.x-k8s.io_workloads.yaml" ]; }

if [ -n "${MODELFLEET_KUEUE_DIR:-}" ]; then
  complete "$MODELFLEET_KUEUE_DIR" || die "MODELFLEET_KUEUE_DIR=$MODELFLEET_KUEUE_DIR lacks an executable kueue and crds/"
  echo "$MODELFLEET_KUEUE_DIR"; exit 0
fi
OUT="$CACHE_ROOT/kueue/$KUEUE_VERSION"
reuse_or_lock kueue "$OUT/bin"
mkdir -p "$OUT/bin" "$OUT/work"
START=$(date +%s)
say "building Kueue $KUEUE_VERSION into $OUT/bin (several minutes on two cores)"
build_simple kueue sigs.k8s.io/kueue "$KUEUE_VERSION" sigs.k8s.io/kueue/cmd/kueue "$OUT/bin" "$OUT/work" \
  "-X sigs.k8s.io/kueue/pkg/version.GitVersion=$KUEUE_VERSION" \
  || die "Kueue $KUEUE_VERSION failed to build; see the log named above"
run "copy Kueue's CRDs" "$OUT/work/crds.log" bash -c "
  dir=\$(cd '$OUT/work/kueue' && go mod download -json sigs.k8s.io/kueue@$KUEUE_VERSION | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"Dir\"])')
  rm -rf '$OUT/bin/crds.tmp' && mkdir -p '$OUT/bin/crds.tmp'
  cp \"\$dir\"/config/components/crd/bases/*.yaml '$OUT/bin/crds.tmp/'
  chmod u+w '$OUT/bin/crds.tmp'/*.yaml" || die "copying Kueue's CRDs failed; see the log named above"
rm -rf "$OUT/bin/crds" && mv "$OUT/bin/crds.tmp" "$OUT/bin/crds"
say "done in $(( $(date +%s) - START ))s"
echo "$OUT/bin"
