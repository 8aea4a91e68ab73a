#!/usr/bin/env bash
# make demo: runs `vigil demo` with predictor-py beside it. Without a usable
# Python the demo still runs, degraded (rules alone), and says so; the board
# shows that the model is unavailable.
set -uo pipefail
cd "$(dirname "$0")/.."
export VIGIL_PREDICTOR_ADDR=${VIGIL_PREDICTOR_ADDR:-127.0.0.1:50151}
mkdir -p data
# A predictor the user started before the demo is theirs to stop.
if bash scripts/predictor.sh status >/dev/null; then
  echo "predictor-py is already running; the demo uses it."
else
  trap 'bash scripts/predictor.sh stop >/dev/null' EXIT
  echo "Setting up predictor-py (the first time installs its Python packages; log: data/predictor-setup.log)…"
  if bash scripts/setup-predictor.sh >data/predictor-setup.log 2>&1 && bash scripts/predictor.sh start; then
    echo "Stop the model with 'make predictor-stop' to see degraded mode; 'make predictor-start' brings it back."
  else
    echo "WARNING: predictor-py could not be started (see data/predictor-setup.log, data/predictor.log)."
    echo "         The demo runs degraded: scores come from the rules alone and the board says the model is unavailable."
  fi
fi
./bin/vigil demo "$@"
