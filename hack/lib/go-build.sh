# Shared by the scripts that build a binary from a Go module into the versioned cache (k8s-binaries.sh,
# versitygw.sh, argocd-health.sh). The caller defines say() (its own prefix on stderr) before sourcing this file.

# run STEP LOG CMD...: runs CMD with output to LOG; on failure names the step and shows the log's tail.
run() {
  local step=$1 log=$2; shift 2
  say "$step (log: $log)"
  local timer=()
  [ -x /usr/bin/time ] && timer=(/usr/bin/time -v -o "$log.time")  # GNU time: wall time and peak memory
  if ! "${timer[@]}" "$@" >"$log" 2>&1; then
    say "ERROR: step '$step' failed; last lines of $log:"
    tail -n 25 "$log" >&2
    return 1
  fi
  [ -f "$log.time" ] && awk -F': ' '/Elapsed \(wall clock\)/ {w=$2} /Maximum resident set size/ {r=$2} END {printf "  wall %s, peak RSS %.0f MiB\n", w, r/1024}' "$log.time" >&2
  return 0
}

wrapper_module() {  # dir module -> fresh wrapper module in dir
  rm -rf "$1"; mkdir -p "$1"
  (cd "$1" && go mod init "$2" >/dev/null 2>&1)
}

build_simple() {  # name module version package out_dir work_dir [ldflags]
  local name=$1 mod=$2 v=$3 pkg=$4 out=$5 work=$6 ldflags=${7:-}
  wrapper_module "$work/$name" "modelfleet.local/$name-binary"
  run "resolve $mod@$v" "$work/$name-get.log" \
    bash -c "cd '$work/$name' && printf 'package main\n' > tools.go && go get '$pkg@$v'" || return 1
  run "build $name $v" "$work/$name-build.log" \
    bash -c "cd '$work/$name' && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w $ldflags' -o '$out/$name' '$pkg'" || return 1
}

# reuse_or_lock NAME DIR: with a complete build in DIR (the caller's `complete DIR` says so), prints DIR and exits;
# else takes NAME's build lock and looks again (a second caller waits for the first build, then reuses it), and
# returns holding the lock with the Go toolchain checked.
reuse_or_lock() {
  local name=$1 dir=$2
  complete "$dir" && { echo "$dir"; exit 0; }
  command -v go >/dev/null 2>&1 \
    || die "step 'find Go toolchain': 'go' is not on PATH; install Go >= 1.26 (https://go.dev/doc/install)"
  mkdir -p "$CACHE_ROOT"
  exec 9>"$CACHE_ROOT/.$name.lock"
  flock 9
  complete "$dir" && { echo "$dir"; exit 0; }
  return 0
}
