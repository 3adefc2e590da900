#!/usr/bin/env bash
# Builds Prometheus 3 and promtool (github.com/prometheus/prometheus, whose module version v0.316.0 is Prometheus
# 3.16.0) into a versioned cache directory outside the repo, for the drift tests, the e2e tests and the demo.
#
# Built with `-tags remove_all_sd,enable_kubernetes_sd`: every service discovery but Kubernetes, file and HTTP is left
# out (the dev cluster's pods are found with kubernetes_sd_configs, as in a real cluster). The version is set through
# ldflags so `prometheus --version` says 3.16.0. Without the built-in UI assets the web pages fail; the API works.
#
# Prints the directory holding `prometheus` and `promtool` as its last line of stdout. Idempotent: a complete cache is
# reused. MODELFLEET_PROMETHEUS_DIR pointing at a directory with both skips the build.
set -euo pipefail

PROMETHEUS_MODULE_VERSION=${MODELFLEET_PROMETHEUS_MODULE_VERSION:-v0.316.0}
PROMETHEUS_VERSION=${MODELFLEET_PROMETHEUS_VERSION:-3.16.0}
CACHE_ROOT=${MODELFLEET_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/modelfleet}
TAGS=remove_all_sd,enable_kubernetes_sd

say() { echo "prometheus: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }
# shellcheck source=lib/go-build.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/go-build.sh"

complete() { [ -x "$1/prometheus" ] && [ -x "$1/promtool" ]; }

if [ -n "${MODELFLEET_PROMETHEUS_DIR:-}" ]; then
  complete "$MODELFLEET_PROMETHEUS_DIR" \
    || die "MODELFLEET_PROMETHEUS_DIR=$MODELFLEET_PROMETHEUS_DIR lacks an executable prometheus and promtool"
  echo "$MODELFLEET_PROMETHEUS_DIR"; exit 0
fi
OUT="$CACHE_ROOT/prometheus/$PROMETHEUS_VERSION"
reuse_or_lock prometheus "$OUT/bin"
WORK="$OUT/work/prometheus"
mkdir -p "$OUT/bin"
wrapper_module "$WORK" modelfleet.local/prometheus-binary
START=$(date +%s)
say "building Prometheus $PROMETHEUS_VERSION and promtool into $OUT/bin (about 4 minutes on two cores)"
run "resolve github.com/prometheus/prometheus@$PROMETHEUS_MODULE_VERSION" "$WORK/get.log" \
  bash -c "cd '$WORK' && printf 'package main\n' > tools.go \
    && go get github.com/prometheus/prometheus/cmd/prometheus@$PROMETHEUS_MODULE_VERSION \
    && go get github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_MODULE_VERSION" \
  || die "resolving Prometheus' modules failed; see the log named above"
LDFLAGS="-s -w -X github.com/prometheus/common/version.Version=$PROMETHEUS_VERSION"
LDFLAGS="$LDFLAGS -X github.com/prometheus/common/version.Branch=HEAD"
LDFLAGS="$LDFLAGS -X github.com/prometheus/common/version.Revision=module-$PROMETHEUS_MODULE_VERSION"
for tool in prometheus promtool; do
  run "build $tool $PROMETHEUS_VERSION" "$WORK/$tool-build.log" \
    bash -c "cd '$WORK' && CGO_ENABLED=0 go build -tags '$TAGS' -trimpath -ldflags '$LDFLAGS' \
      -o '$OUT/bin/$tool.tmp' github.com/prometheus/prometheus/cmd/$tool" \
    || die "building $tool failed; see the log named above"
done
# Both appear together, so a half-built cache is never taken for a complete one.
mv "$OUT/bin/promtool.tmp" "$OUT/bin/promtool"
mv "$OUT/bin/prometheus.tmp" "$OUT/bin/prometheus"
say "done in $(( $(date +%s) - START ))s"
echo "$OUT/bin"
