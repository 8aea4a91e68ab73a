#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian machine: Chromium for the
# board's browser test, redis-server and PostgreSQL (the tests start their
# own, on free loopback ports), the board's npm packages, and predictor-py's
# virtual environment and model. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need_apt+=(postgresql)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup-test: please install ${need_apt[*]} (apt-get install ${need_apt[*]}), or run as root" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if [ ! -d ui/node_modules/playwright-core ]; then
  (cd ui && npm ci --no-audit --no-fund --loglevel=error)
fi

bash scripts/setup-predictor.sh
