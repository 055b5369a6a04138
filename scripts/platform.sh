#!/usr/bin/env bash
# The platform's own processes on top of the infrastructure: the Tron node simulator and the
# workers (Faust agents + web). Each runs in the background with a pid file in .local/run and a
# log in .local/logs; a process already answering on its port is reused.
#
#   scripts/platform.sh up [sim|workers|all]   start and wait until healthy, then print URLs
#   scripts/platform.sh down                   stop what this script started
#   scripts/platform.sh status
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCAL="${CHECKOUT_LOCAL_DIR:-$ROOT/.local}"
RUN="$LOCAL/run"
LOGS="$LOCAL/logs"
VENV="$ROOT/.venv/bin"
SIM_PORT="${SIM_PORT:-8090}"
WORKER_PORTS="${WORKER_PORTS:-6066 6067}"

mkdir -p "$RUN" "$LOGS"

say() { printf '\033[1m[platform]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[31m[platform] error:\033[0m %s\n' "$*" >&2; exit 1; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_http() { # url seconds name log
  local deadline=$((SECONDS + $2))
  until curl -fsS -o /dev/null -X "${5:-GET}" "$1" 2>/dev/null; do
    if ((SECONDS >= deadline)); then tail -n 40 "$4" >&2; die "$3 did not answer $1 within $2 s (log: $4)"; fi
    sleep 0.5
  done
}

start() { # name port health-url method command…
  local name="$1" port="$2" url="$3" method="$4"
  shift 4
  if port_open "$port"; then
    say "$name: something already listens on 127.0.0.1:$port, reusing it"
    return 0
  fi
  say "starting $name on 127.0.0.1:$port (log: $LOGS/$name.log)"
  # exec: the pid file holds the service's own pid; setsid: it outlives this script's session.
  (cd "$ROOT" && exec setsid "$@" >"$LOGS/$name.log" 2>&1 </dev/null) &
  echo $! >"$RUN/$name.pid"
  wait_http "$url" 90 "$name" "$LOGS/$name.log" "$method"
}

stop() { # name
  local pidfile="$RUN/$1.pid" pid
  [ -f "$pidfile" ] || return 0
  pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    say "stopping $1 (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$pidfile"
}

sim_up() {
  start tron-sim "$SIM_PORT" "http://127.0.0.1:$SIM_PORT/wallet/getnodeinfo" POST \
    "$VENV/python" -m tron_sim --host 127.0.0.1 --port "$SIM_PORT" \
    --block-interval "${SIM_BLOCK_INTERVAL:-3}" --data-dir "$LOCAL/sim"
}

workers_up() {
  local port
  for port in $WORKER_PORTS; do
    start "worker-$port" "$port" "http://127.0.0.1:$port/healthz" GET \
      env WEB_PORT="$port" WEBHOOK_ALLOW_LOOPBACK="${WEBHOOK_ALLOW_LOOPBACK:-true}" \
      "$VENV/checkout" worker -l info
  done
}

demo_merchant() { # → prints the demo merchant's API key (created once, kept in .local)
  local file="$LOCAL/demo-merchant.json" first="${WORKER_PORTS%% *}" key=""
  if [ -f "$file" ]; then
    key="$("$VENV/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["api_key"])' "$file")"
    # A database reset forgets the merchant: check the key still opens the API.
    curl -fsS -o /dev/null -H "Authorization: Bearer $key" "http://127.0.0.1:$first/api/v1/settlements" || key=""
  fi
  if [ -z "$key" ]; then
    (cd "$ROOT" && "$VENV/checkout" create-merchant --name "Demo Shop" >"$file.new" 2>>"$LOGS/demo-merchant.log") \
      || die "could not create the demo merchant (see $LOGS/demo-merchant.log)"
    mv "$file.new" "$file"
    key="$("$VENV/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["api_key"])' "$file")"
  fi
  echo "$key"
}

summary() {
  local first="${WORKER_PORTS%% *}" all="" key
  key="$(demo_merchant)"
  for p in $WORKER_PORTS; do all+="http://127.0.0.1:$p "; done
  cat >&2 <<EOF

crypto-checkout is up:
  API, payment pages   http://127.0.0.1:$first   (workers: $all)
  readiness            curl -s http://127.0.0.1:$((first + 1000))/readyz   (operators' listener)
  metrics              curl -s http://127.0.0.1:$((first + 1000))/metrics
  Tron node simulator  http://127.0.0.1:$SIM_PORT   (curl -s -X POST http://127.0.0.1:$SIM_PORT/wallet/getnodeinfo)
  Kafka                127.0.0.1:9092
  PostgreSQL           postgresql://checkout:checkout@127.0.0.1:5432/checkout
  Redis                redis://127.0.0.1:6379/0
  logs                 $LOGS

Try it (demo merchant "Demo Shop", API key in $LOCAL/demo-merchant.json):
  export CHECKOUT_API_KEY=$key
  curl -s -X POST http://127.0.0.1:$first/api/v1/invoices -H "Authorization: Bearer \$CHECKOUT_API_KEY" \\
       -H 'Content-Type: application/json' -d '{"amount": "9.99", "order_id": "demo-1"}'
  # open the payment page it names:      http://127.0.0.1:$first/pay/<invoice id>
  # pay it on the simulator (no wallet needed):
  curl -s -X POST http://127.0.0.1:$SIM_PORT/sim/transfer -d '{"to": "<deposit_address>", "amount": "9.99"}'
  # then watch it settle:
  curl -s http://127.0.0.1:$first/api/v1/invoices/<invoice id>/settlement -H "Authorization: Bearer \$CHECKOUT_API_KEY"
Stop everything with: make down
EOF
}

case "${1:-}" in
  up)
    case "${2:-all}" in
      sim) sim_up ;;
      workers) workers_up ;;
      all) sim_up; workers_up; summary ;;
      *) die "unknown part '${2}' (sim, workers, all)" ;;
    esac ;;
  down)
    for port in $WORKER_PORTS; do stop "worker-$port"; done
    stop tron-sim ;;
  status)
    for entry in "tron-sim:$SIM_PORT" $(for p in $WORKER_PORTS; do echo "worker-$p:$p"; done); do
      if port_open "${entry##*:}"; then state=up; else state=down; fi
      printf '  %-12s 127.0.0.1:%s  %s\n' "${entry%%:*}" "${entry##*:}" "$state"
    done ;;
  *) sed -n '2,9p' "$0" >&2; exit 2 ;;
esac
