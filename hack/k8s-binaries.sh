#!/usr/bin/env bash
# Builds the local control plane's binaries from Go modules into a versioned cache directory outside the repo:
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubectl  (k8s.io/kubernetes, wrapper module)
#   etcd                                                              (go.etcd.io/etcd/server/v3, wrapper module)
#   kwok                                                              (sigs.k8s.io/kwok, wrapper module)
#   helm                                                              (helm.sh/helm/v3, wrapper module)
#
# k8s.io/kubernetes cannot be `go install`ed: its go.mod replaces every k8s.io/* staging module with a local path,
# and replace directives of a dependency are ignored. The wrapper module therefore pins each staging module to the
# published v0.X.Y that matches v1.X.Y.
#
# Prints the directory holding the binaries as its last line of stdout. Idempotent: a complete cache is reused.
# KUBEBUILDER_ASSETS (the envtest convention) pointing at prebuilt binaries skips the build.
set -euo pipefail

K8S_VERSIONS=${MODELFLEET_K8S_VERSIONS:-"v1.37.2 v1.36.3"}   # newest first; the next is tried when one fails
ETCD_VERSION=${MODELFLEET_ETCD_VERSION:-v3.6.16}
KWOK_VERSION=${MODELFLEET_KWOK_VERSION:-v0.8.0}
HELM_VERSION=${MODELFLEET_HELM_VERSION:-v3.22.0}
CACHE_ROOT=${MODELFLEET_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/modelfleet}
K8S_BINARIES="kube-apiserver kube-controller-manager kube-scheduler kubectl"
ALL_BINARIES="etcd $K8S_BINARIES kwok helm"

say() { echo "k8s-binaries: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }
# shellcheck source=lib/go-build.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/go-build.sh"

have_all() {  # dir -> 0 when every binary is there and executable
  local b
  for b in $ALL_BINARIES; do [ -x "$1/$b" ] || return 1; done
}

if [ -n "${KUBEBUILDER_ASSETS:-}" ]; then
  have_all "$KUBEBUILDER_ASSETS" || die "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS lacks one of: $ALL_BINARIES"
  echo "$KUBEBUILDER_ASSETS"; exit 0
fi

command -v go >/dev/null 2>&1 || die "step 'find Go toolchain': 'go' is not on PATH; install Go >= 1.26 (https://go.dev/doc/install)"

mkdir -p "$CACHE_ROOT"
exec 9>"$CACHE_ROOT/.k8s-binaries.lock"
flock 9   # one build at a time; a second caller waits and then finds the cache complete

build_kubernetes() {  # version out_dir work_dir
  local v=$1 out=$2 work=$3 minor=${1#v1.}
  local staging_version="v0.${minor}"
  minor=${minor%%.*}
  wrapper_module "$work/k8s" modelfleet.local/k8s-binaries
  run "download k8s.io/kubernetes@$v" "$work/k8s-download.log" \
    bash -c "cd '$work/k8s' && go mod download -json k8s.io/kubernetes@$v > kubernetes.json" || return 1
  local gomod
  gomod=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["GoMod"])' "$work/k8s/kubernetes.json")
  # Every `k8s.io/X => ./staging/src/k8s.io/X` line becomes `k8s.io/X => k8s.io/X v0.Y.Z`.
  local edits=(-require "k8s.io/kubernetes@$v")
  local m
  for m in $(sed -n 's#^[[:space:]]*\(k8s.io/[^[:space:]]*\)[[:space:]]*=>[[:space:]]*\./staging/.*#\1#p' "$gomod"); do
    edits+=(-replace "$m=$m@$staging_version")
  done
  [ ${#edits[@]} -gt 10 ] || { say "ERROR: found no staging replace lines in $gomod"; return 1; }
  (cd "$work/k8s" && go mod edit "${edits[@]}")
  local pkgs="" b
  for b in $K8S_BINARIES; do pkgs="$pkgs k8s.io/kubernetes/cmd/$b"; done
  run "resolve modules for kubernetes $v" "$work/k8s-tidy.log" \
    bash -c "cd '$work/k8s' && printf 'package main\n' > tools.go && go get $pkgs" || return 1
  local ver="-X k8s.io/component-base/version.gitVersion=$v -X k8s.io/component-base/version.gitMajor=1"
  ver="$ver -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
  ver="$ver -X k8s.io/component-base/version.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  ver="$ver -X k8s.io/client-go/pkg/version.gitVersion=$v -X k8s.io/client-go/pkg/version.gitMajor=1"
  ver="$ver -X k8s.io/client-go/pkg/version.gitMinor=$minor"
  run "build $K8S_BINARIES $v" "$work/k8s-build.log" \
    bash -c "cd '$work/k8s' && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w $ver' -o '$out/' $pkgs" || return 1
  cp "$work/k8s/go.mod" "$out/k8s-wrapper.go.mod"
}

# KWOK's own stage definitions (node initialise + lease heartbeat, the general pod life cycle), taken from the
# module's source so they always match the binary; the dev cluster passes them to kwok as its configuration.
ensure_kwok_stages() {  # out_dir work_dir
  local out=$1 work=$2 dir
  [ -f "$out/kwok-stages/pod-ready.yaml" ] && return 0
  mkdir -p "$work/kwok-src" "$out/kwok-stages"
  [ -f "$work/kwok-src/go.mod" ] || wrapper_module "$work/kwok-src" modelfleet.local/kwok-stages
  dir=$(cd "$work/kwok-src" && go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])') \
    || { say "ERROR: step 'download kwok stages' failed"; return 1; }
  cp "$dir/kustomize/stage/node/fast/node-initialize.yaml" \
     "$dir/kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml" \
     "$dir"/kustomize/stage/pod/general/pod-*.yaml "$out/kwok-stages/"
  chmod -R u+w "$out/kwok-stages"
}

for K8S_VERSION in $K8S_VERSIONS; do
  OUT="$CACHE_ROOT/k8s/$K8S_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION-helm-$HELM_VERSION"
  if have_all "$OUT/bin"; then ensure_kwok_stages "$OUT/bin" "$OUT/work" && echo "$OUT/bin"; exit $?; fi
  WORK="$OUT/work"; mkdir -p "$OUT/bin" "$WORK"
  START=$(date +%s)
  say "building Kubernetes $K8S_VERSION binaries into $OUT/bin (cold build: tens of minutes on two cores)"
  if build_kubernetes "$K8S_VERSION" "$OUT/bin" "$WORK" \
     && build_simple etcd go.etcd.io/etcd/server/v3 "$ETCD_VERSION" go.etcd.io/etcd/server/v3 "$OUT/bin" "$WORK" \
     && build_simple kwok sigs.k8s.io/kwok "$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwok "$OUT/bin" "$WORK" \
          "-X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION" \
     && build_simple helm helm.sh/helm/v3 "$HELM_VERSION" helm.sh/helm/v3/cmd/helm "$OUT/bin" "$WORK" \
          "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
     && ensure_kwok_stages "$OUT/bin" "$WORK"; then
    say "done in $(( $(date +%s) - START ))s"
    echo "$(( $(date +%s) - START ))" > "$OUT/build-seconds"
    echo "$OUT/bin"; exit 0
  fi
  say "Kubernetes $K8S_VERSION failed to build; trying the next version (if any)"
done
die "no Kubernetes version in '$K8S_VERSIONS' could be built; see the logs named above"
