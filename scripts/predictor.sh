#!/usr/bin/env bash
# Starts or stops the demo's predictor-py in the background (make
# predictor-start, make predictor-stop; make demo uses both), or tells
# whether it runs (status). Its log is data/predictor.log; its address
# VIGIL_PREDICTOR_ADDR (127.0.0.1:50151), its metrics
# VIGIL_PREDICTOR_METRICS_ADDR (127.0.0.1:9464; empty: none).
set -euo pipefail
cd "$(dirname "$0")/.."
addr=${VIGIL_PREDICTOR_ADDR:-127.0.0.1:50151}
metrics=${VIGIL_PREDICTOR_METRICS_ADDR-127.0.0.1:9464}
pidfile=data/predictor.pid
mkdir -p data

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

case "${1:-}" in
start)
  if running; then
    echo "predictor-py is already running (pid $(cat "$pidfile"))"
    exit 0
  fi
  python=predictor-py/.venv/bin/python
  if [ ! -x "$python" ] || [ ! -f predictor-py/model/model.json ]; then
    echo "predictor-py is not set up: run bash scripts/setup-predictor.sh" >&2
    exit 1
  fi
  (cd predictor-py && exec .venv/bin/python -m predictor --addr "$addr" \
    --metrics-addr "$metrics" --model model/model.json) >data/predictor.log 2>&1 &
  echo $! >"$pidfile"
  host=${addr%:*} port=${addr##*:}
  for _ in $(seq 1 300); do
    if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
      echo "predictor-py serving on $addr (pid $(cat "$pidfile"), log data/predictor.log)"
      exit 0
    fi
    running || break
    sleep 0.1
  done
  echo "predictor-py did not start (is $addr or $metrics in use?); see data/predictor.log" >&2
  tail -3 data/predictor.log >&2 || true
  exit 1
  ;;
stop)
  if running; then
    kill "$(cat "$pidfile")"
    echo "predictor-py stopped"
  fi
  rm -f "$pidfile"
  ;;
status)
  if running; then
    echo "predictor-py is running (pid $(cat "$pidfile"))"
  else
    echo "predictor-py is not running"
    exit 1
  fi
  ;;
*)
  echo "usage: $0 start|stop|status" >&2
  exit 2
  ;;
esac
