#!/usr/bin/env bash
# Runs a command (normally `bin/vigil bench …`) against a throwaway Redis and
# PostgreSQL: both are started on free loopback ports in a temporary
# directory, the command gets --redis-url and --postgres-url appended, and
# both are stopped and removed afterwards, whatever happens. `make bench-full`
# uses it.
#
#   scripts/bench-services.sh bin/vigil bench [flags…]
#
# Needs redis-server and PostgreSQL's server binaries (Debian: apt-get install
# redis-server postgresql; they are found through pg_config or under
# /usr/lib/postgresql/*/bin). PostgreSQL refuses to run as root, so as root
# it runs as the postgres user. BENCH_PG_FSYNC=off turns fsync off (default
# on: a reading is durable before its 2xx, as in production).
set -euo pipefail

if [ $# -eq 0 ]; then
  echo "usage: $0 COMMAND [ARGS…]  (e.g. $0 bin/vigil bench)" >&2
  exit 2
fi

command -v redis-server >/dev/null 2>&1 || { echo "bench-services: redis-server is not installed" >&2; exit 1; }
bindir=""
if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then
  bindir=$(pg_config --bindir)
else
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V); do bindir=$d; done
fi
[ -n "$bindir" ] && [ -x "$bindir/initdb" ] || { echo "bench-services: PostgreSQL's initdb is not installed" >&2; exit 1; }

dir=$(mktemp -d /tmp/vigil-bench-services-XXXXXX)
chmod 755 "$dir"
redis_pid=""
pg_started=""

as_pg() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

cleanup() {
  set +e
  if [ -n "$pg_started" ]; then
    as_pg "$bindir/pg_ctl" -D "$dir/pg" -m fast -w stop >/dev/null 2>&1 ||
      as_pg "$bindir/pg_ctl" -D "$dir/pg" -m immediate -w stop >/dev/null 2>&1
  fi
  if [ -n "$redis_pid" ]; then
    kill "$redis_pid" 2>/dev/null
    wait "$redis_pid" 2>/dev/null
  fi
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A port nothing listens on (the services bind it right after; a clash makes
# them fail to start, and the script with them).
free_port() {
  local p
  for _ in $(seq 1 100); do
    p=$((20000 + RANDOM % 30000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return 0
    fi
  done
  echo "bench-services: no free port found" >&2
  return 1
}

wait_port() {
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "bench-services: nothing listens on 127.0.0.1:$1 after 10 s" >&2
  return 1
}

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$dir" --logfile "$dir/redis.log" &
redis_pid=$!
wait_port "$redis_port"

pg_port=$(free_port)
if [ "$(id -u)" -eq 0 ]; then chown postgres "$dir"; fi
as_pg "$bindir/initdb" -D "$dir/pg" -U postgres -A trust -E UTF8 --locale=C --no-sync >"$dir/initdb.log" 2>&1 ||
  { cat "$dir/initdb.log" >&2; exit 1; }
fsync=${BENCH_PG_FSYNC:-on}
as_pg "$bindir/pg_ctl" -D "$dir/pg" -l "$dir/postgres.log" -w -t 60 -o \
  "-c port=$pg_port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$dir -c max_connections=300 -c fsync=$fsync -c synchronous_commit=$fsync" \
  start >/dev/null
pg_started=1

echo "bench-services: Redis on 127.0.0.1:$redis_port, PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on 127.0.0.1:$pg_port (fsync $fsync)" >&2
"$@" --redis-url "redis://127.0.0.1:$redis_port/0" \
  --postgres-url "postgres://postgres@127.0.0.1:$pg_port/postgres?sslmode=disable"
