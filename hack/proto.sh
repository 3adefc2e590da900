#!/usr/bin/env bash
# The model server's gRPC code (Open Inference Protocol v2), generated from operator/modelfleet/server/grpc_v2/
# open_inference.proto by the grpcio-tools pinned in pyproject.toml (dev). The output is checked in, so the server
# needs no compiler at run time; `hack/proto.sh --check` (part of `make verify`) fails when it differs.
set -euo pipefail
cd "$(dirname "$0")/../operator"
PY=${PY:-../.venv/bin/python}
PROTO=modelfleet/server/grpc_v2/open_inference.proto
out=.
if [[ "${1:-}" == "--check" ]]; then
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
fi
"$PY" -m grpc_tools.protoc -I. --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" "$PROTO"
if [[ "$out" != . ]]; then
  for f in open_inference_pb2.py open_inference_pb2.pyi open_inference_pb2_grpc.py; do
    if ! cmp -s "$out/modelfleet/server/grpc_v2/$f" "modelfleet/server/grpc_v2/$f"; then
      echo "operator/modelfleet/server/grpc_v2/$f differs from what $PROTO generates: run make manifests" >&2
      exit 1
    fi
  done
fi
