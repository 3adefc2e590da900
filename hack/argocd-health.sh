#!/usr/bin/env bash
# Builds hack/argocd-health (Argo CD's own health engine as a small program: util/lua and util/settings of
# github.com/argoproj/argo-cd/v3, gitops-engine's health package) into a versioned cache directory outside the repo.
#
# Argo CD's go.mod replaces its k8s.io/* dependencies (and points gitops-engine at a local directory), and replace
# directives of a dependency are ignored, so the generated module copies Argo CD's replace lines (all but the local
# one; gitops-engine comes from its published tag of the same version). Argo CD v3.6 needs Go 1.27: the go command
# fetches that toolchain through the module proxy (GOTOOLCHAIN below).
#
# Prints the binary's path as its last line of stdout. Idempotent: a binary built from the same source is reused.
set -euo pipefail
export GOTOOLCHAIN=${MODELFLEET_ARGOCD_GOTOOLCHAIN:-go1.27.3}

ARGOCD_VERSION=${MODELFLEET_ARGOCD_VERSION:-v3.6.1}
CACHE_ROOT=${MODELFLEET_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/modelfleet}
SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/argocd-health/main.go"

say() { echo "argocd-health: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }
# shellcheck source=lib/go-build.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/go-build.sh"

OUT="$CACHE_ROOT/argocd-health/$ARGOCD_VERSION"
STAMP="$(sha256sum "$SRC" | cut -c1-16)"
BIN="$OUT/bin/argocd-health-$STAMP"
[ -x "$BIN" ] && { echo "$BIN"; exit 0; }
command -v go >/dev/null 2>&1 || die "step 'find Go toolchain': 'go' is not on PATH; install Go >= 1.26 (https://go.dev/doc/install)"

mkdir -p "$CACHE_ROOT"
exec 9>"$CACHE_ROOT/.argocd-health.lock"
flock 9
[ -x "$BIN" ] && { echo "$BIN"; exit 0; }
WORK="$OUT/work"
mkdir -p "$OUT/bin"
wrapper_module "$WORK" modelfleet.local/argocd-health
cp "$SRC" "$WORK/main.go"
START=$(date +%s)
say "building Argo CD $ARGOCD_VERSION's health engine into $OUT/bin (cold: several minutes on two cores)"
run "download github.com/argoproj/argo-cd/v3@$ARGOCD_VERSION" "$WORK/download.log" \
  bash -c "cd '$WORK' && go mod download -json github.com/argoproj/argo-cd/v3@$ARGOCD_VERSION > argocd.json" \
  || die "the download failed; see the log named above"
GOMOD=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["GoMod"])' "$WORK/argocd.json")
# Every `old [v] => new [v]` line of Argo CD's replace directives, as `go mod edit -replace` arguments.
mapfile -t EDITS < <(python3 - "$GOMOD" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
lines = []
for block in re.findall(r"^replace \((.*?)^\)", text, re.S | re.M):
    lines += block.splitlines()
lines += [m for m in re.findall(r"^replace ([^(].*)$", text, re.M)]
for line in lines:
    line = line.split("//")[0].strip()
    if "=>" not in line:
        continue
    old, new = (part.split() for part in line.split("=>"))
    if new[0].startswith("."):
        continue  # the local gitops-engine directory: its published tag is required instead
    print("-replace=" + "@".join(old) + "=" + "@".join(new))
PY
)
[ ${#EDITS[@]} -gt 10 ] || die "found no replace lines in $GOMOD"
(cd "$WORK" && go mod edit -require "github.com/argoproj/argo-cd/v3@$ARGOCD_VERSION" \
  -require "github.com/argoproj/argo-cd/gitops-engine/v3@$ARGOCD_VERSION" "${EDITS[@]}")
run "resolve modules" "$WORK/tidy.log" bash -c "cd '$WORK' && go mod tidy" \
  || die "resolving Argo CD's modules failed; see the log named above"
run "build argocd-health" "$WORK/build.log" \
  bash -c "cd '$WORK' && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o '$BIN.tmp' ." \
  || die "the build failed; see the log named above"
mv "$BIN.tmp" "$BIN"
say "done in $(( $(date +%s) - START ))s"
echo "$BIN"
