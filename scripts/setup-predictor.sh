#!/usr/bin/env bash
# Builds predictor-py from nothing: its virtual environment (pinned PyPI
# packages), the gRPC stubs, and the model artifact if missing. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v python3 >/dev/null 2>&1; then
  echo "setup-predictor: python3 is required (apt-get install python3 python3-venv)" >&2
  exit 1
fi
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  echo "setup-predictor: python3's venv module is missing (apt-get install python3-venv)" >&2
  exit 1
fi
if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "setup-predictor: python3 3.11 or newer is required (found $(python3 -V 2>&1))" >&2
  exit 1
fi
make -C predictor-py all
