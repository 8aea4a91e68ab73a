#!/usr/bin/env bash
# Regenerates predictor/predictionpb from predictor-py/proto/prediction.proto
# (run by `go generate ./predictor/...`). The plugins are the versions pinned
# by go.mod's tool directives; protoc is Debian's protobuf-compiler, or the
# one inside predictor-py's virtual environment (grpcio-tools) when protoc is
# not installed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
gen=$(go tool -n protoc-gen-go)
gengrpc=$(go tool -n protoc-gen-go-grpc)
if command -v protoc >/dev/null; then
  protoc=(protoc)
elif [ -x predictor-py/.venv/bin/python ]; then
  protoc=(predictor-py/.venv/bin/python -m grpc_tools.protoc)
else
  echo "genproto: need protoc (apt-get install protobuf-compiler) or predictor-py's venv" >&2
  exit 1
fi
"${protoc[@]}" -I predictor-py/proto \
  --plugin=protoc-gen-go="$gen" --plugin=protoc-gen-go-grpc="$gengrpc" \
  --go_out=. --go_opt=module=vigil \
  --go-grpc_out=. --go-grpc_opt=module=vigil \
  prediction.proto
