#!/usr/bin/env bash
# Builds versitygw (github.com/versity/versitygw, Apache-2.0), an S3 server whose POSIX backend serves a directory as
# buckets, into a versioned cache directory outside the repo. The dev cluster starts it on demand as the S3 store of
# the tests and the demo (real S3 API, real SigV4 signatures; no mocks).
#
# Prints the binary's path as its last line of stdout. Idempotent: a built binary is reused.
# MODELFLEET_VERSITYGW pointing at a prebuilt binary skips the build.
set -euo pipefail

VERSITYGW_VERSION=${MODELFLEET_VERSITYGW_VERSION:-v1.8.0}
CACHE_ROOT=${MODELFLEET_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/modelfleet}

say() { echo "versitygw: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }
# shellcheck source=lib/go-build.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/go-build.sh"

if [ -n "${MODELFLEET_VERSITYGW:-}" ]; then
  [ -x "$MODELFLEET_VERSITYGW" ] || die "MODELFLEET_VERSITYGW=$MODELFLEET_VERSITYGW is not an executable file"
  echo "$MODELFLEET_VERSITYGW"; exit 0
fi
OUT="$CACHE_ROOT/versitygw/$VERSITYGW_VERSION"
[ -x "$OUT/bin/versitygw" ] && { echo "$OUT/bin/versitygw"; exit 0; }
command -v go >/dev/null 2>&1 || die "step 'find Go toolchain': 'go' is not on PATH; install Go >= 1.26 (https://go.dev/doc/install)"

mkdir -p "$CACHE_ROOT"
exec 9>"$CACHE_ROOT/.versitygw.lock"
flock 9   # one build at a time; a second caller waits and then finds the binary
[ -x "$OUT/bin/versitygw" ] && { echo "$OUT/bin/versitygw"; exit 0; }
mkdir -p "$OUT/bin" "$OUT/work"
START=$(date +%s)
say "building versitygw $VERSITYGW_VERSION into $OUT/bin (about 1.5 minutes on two cores)"
build_simple versitygw github.com/versity/versitygw "$VERSITYGW_VERSION" github.com/versity/versitygw/cmd/versitygw \
  "$OUT/bin" "$OUT/work" "-X main.Version=$VERSITYGW_VERSION" \
  || die "versitygw $VERSITYGW_VERSION failed to build; see the log named above"
say "done in $(( $(date +%s) - START ))s"
echo "$OUT/bin/versitygw"
