#!/usr/bin/env bash
# The platform's own processes on top of the infrastructure: the Tron node simulator, the
# workers (Faust agents + web), nginx in front of them (the platform's one address, TLS 1.3,
# docs/load-balancer.md) and the signer (the only holder of keys, docs/money-out.md). Each runs in the background with a pid file in .local/run and a
# log in .local/logs; a process already answering on its port is reused.
#
#   scripts/platform.sh up [sim|workers|lb|signer|all]   start and wait until healthy, print URLs
#   scripts/platform.sh down                   stop what this script started
#   scripts/platform.sh status
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCAL="${CHECKOUT_LOCAL_DIR:-$ROOT/.local}"
RUN="$LOCAL/run"
LOGS="$LOCAL/logs"
VENV="$ROOT/.venv/bin"
SIM_PORT="${SIM_PORT:-8090}"
# The merchants' Telegram bot runs against the Bot API stand-in (telegram_sim/) locally, long
# polling, with a development token; give TELEGRAM_API_URL and TELEGRAM_BOT_TOKEN of a real bot
# to use Telegram instead (docs/notifications.md).
TELEGRAM_SIM_PORT="${TELEGRAM_SIM_PORT:-8091}"
DEV_BOT_TOKEN="1000000001:crypto-checkout-local-development-bot"
DEV_BOT_NAME="checkout_dev_bot"
# The seeds' topology (`KAFKA_NODES=3 make up`: three brokers from scripts/infra.sh, min ISR 2):
# every process of ours reaches all three and creates its topics with replication factor 3.
KAFKA_NODES="${KAFKA_NODES:-1}"
if [ "$KAFKA_NODES" -gt 1 ]; then
  brokers="$(bash "$ROOT/scripts/infra.sh" kafka-bootstrap)"
  export KAFKA_BROKER="${KAFKA_BROKER:-kafka://${brokers//,/;kafka://}}"
  export KAFKA_REPLICATION_FACTOR="${KAFKA_REPLICATION_FACTOR:-3}"
fi
WORKER_PORTS="${WORKER_PORTS:-6066 6067}"
# The load balancer: HTTPS on LB_PORT, a redirect to it on LB_HTTP_PORT; a generated certificate
# for localhost unless LB_CERT and LB_KEY name real ones (docs/load-balancer.md).
LB_PORT="${LB_PORT:-8443}"
LB_HTTP_PORT="${LB_HTTP_PORT:-8080}"
LB_DIR="$LOCAL/nginx"
LB_CERT="${LB_CERT:-$LB_DIR/certs/tls.crt}"
LB_KEY="${LB_KEY:-$LB_DIR/certs/tls.key}"
LB_URL="https://localhost:$LB_PORT"

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

telegram_sim_up() { # only while the bot is pointed at the local stand-in
  [ -z "${TELEGRAM_API_URL:-}" ] || return 0
  start telegram-sim "$TELEGRAM_SIM_PORT" "http://127.0.0.1:$TELEGRAM_SIM_PORT/sim/status" GET \
    "$VENV/python" -m telegram_sim --host 127.0.0.1 --port "$TELEGRAM_SIM_PORT" \
    --bot "$DEV_BOT_TOKEN=$DEV_BOT_NAME"
}

workers_up() {
  local port
  for port in $WORKER_PORTS; do
    start "worker-$port" "$port" "http://127.0.0.1:$port/healthz" GET \
      env WEB_PORT="$port" WEBHOOK_ALLOW_LOOPBACK="${WEBHOOK_ALLOW_LOOPBACK:-true}" \
      TRUSTED_PROXIES="${TRUSTED_PROXIES:-127.0.0.1/32}" PUBLIC_URL="${PUBLIC_URL:-$LB_URL}" \
      TELEGRAM_MODE="${TELEGRAM_MODE:-polling}" \
      TELEGRAM_API_URL="${TELEGRAM_API_URL:-http://127.0.0.1:$TELEGRAM_SIM_PORT}" \
      TELEGRAM_BOT_TOKEN="${TELEGRAM_BOT_TOKEN:-$DEV_BOT_TOKEN}" \
      TELEGRAM_BOT_USERNAME="${TELEGRAM_BOT_USERNAME:-$DEV_BOT_NAME}" \
      "$VENV/checkout" worker -l info
  done
}

lb_up() { # nginx in front of the workers; its config and everything it writes under .local/nginx
  local port servers="" nginx
  if port_open "$LB_PORT"; then
    say "nginx: something already listens on 127.0.0.1:$LB_PORT, reusing it"
    return 0
  fi
  bash "$ROOT/scripts/infra.sh" up nginx # Debian's nginx and openssl, when missing
  nginx="$(command -v nginx || echo /usr/sbin/nginx)"
  for port in $WORKER_PORTS; do servers+="server 127.0.0.1:$port max_fails=1 fail_timeout=10s; "; done
  mkdir -p "$LB_DIR/logs" "$LB_DIR/tmp"
  sh "$ROOT/docker/nginx/local-certificate.sh" "$LB_CERT" "$LB_KEY"
  ( # the same template as docker-compose.yml's nginx service, with the local values
    export LB_DIR LB_BIND=127.0.0.1 LB_PORT LB_HTTP_PORT LB_UPSTREAM_SERVERS="$servers" LB_CERT LB_KEY \
      LB_ACCESS_LOG="$LB_DIR/logs/access.log" LB_HSTS_MAX_AGE="${LB_HSTS_MAX_AGE:-0}"
    "$VENV/python" "$ROOT/docker/nginx/render.py" "$ROOT/docker/nginx/templates/default.conf.template" "$LB_DIR/default.conf"
    "$VENV/python" "$ROOT/docker/nginx/render.py" "$ROOT/docker/nginx/nginx.local.conf.template" "$LB_DIR/nginx.conf"
  ) || die "could not render the nginx configuration into $LB_DIR"
  local args=(-p "$LB_DIR" -e "$LB_DIR/logs/error.log" -c "$LB_DIR/nginx.conf")
  "$nginx" -t -q "${args[@]}" || die "nginx refused $LB_DIR/nginx.conf (see above)"
  say "starting nginx on https://localhost:$LB_PORT (http :$LB_HTTP_PORT redirects; log: $LB_DIR/logs/)"
  (cd "$LB_DIR" && exec setsid "$nginx" "${args[@]}" -g 'daemon off;' >"$LOGS/nginx.log" 2>&1 </dev/null) &
  echo $! >"$RUN/nginx.pid"
  local deadline=$((SECONDS + 30))
  # -k: a real certificate (LB_CERT) names the public host, not localhost.
  until curl -fsS -k -o /dev/null "$LB_URL/healthz" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      tail -n 20 "$LB_DIR/logs/error.log" "$LOGS/nginx.log" >&2
      die "nginx did not answer $LB_URL/healthz within 30 s (logs: $LB_DIR/logs/)"
    fi
    sleep 0.3
  done
}

signer_up() {
  local pidfile="$RUN/signer.pid" deadline=$((SECONDS + 60))
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    say "signer: already running (pid $(cat "$pidfile"))"
  else
    say "starting the signer (log: $LOGS/signer.log)"
    : >"$LOGS/signer.log"
    (cd "$ROOT" && exec setsid "$VENV/checkout" signer >"$LOGS/signer.log" 2>&1 </dev/null) &
    echo $! >"$pidfile"
    # No port to ask: it says which hot wallet it signs for once its keys are loaded.
    until grep -q "^signer: hot wallet" "$LOGS/signer.log" 2>/dev/null; do
      kill -0 "$(cat "$pidfile")" 2>/dev/null || { tail -n 30 "$LOGS/signer.log" >&2; die "the signer exited"; }
      ((SECONDS < deadline)) || die "the signer did not start within 60 s (log: $LOGS/signer.log)"
      sleep 0.5
    done
  fi
  fund_hot_wallet
}

fund_hot_wallet() { # on the simulator: TRX and USDT for payouts, refunds and sweep top-ups, once
  local address trx funded reference
  address="$(sed -n 's/^signer: hot wallet \(T[1-9A-HJ-NP-Za-km-z]*\),.*/\1/p' "$LOGS/signer.log" | tail -n 1)"
  [ -n "$address" ] || die "the signer did not name its hot wallet (log: $LOGS/signer.log)"
  trx="$(curl -fsS "http://127.0.0.1:$SIM_PORT/sim/balance?address=$address" \
    | "$VENV/python" -c 'import json, sys; print(int(float(json.load(sys.stdin)["trx"])))')"
  if [ "$trx" -lt 1000 ]; then
    say "funding the hot wallet $address on the simulator: 10,000 TRX and 100,000 USDT"
    funded="$(curl -fsS -X POST "http://127.0.0.1:$SIM_PORT/sim/fund" -H 'Content-Type: application/json' \
      -d "{\"address\": \"$address\", \"trx\": \"10000\", \"usdt\": \"100000\"}")" \
      || die "could not fund the hot wallet on the simulator"
    # The ledger records money from outside once, under the funding's own txid, so that
    # `checkout ledger reconcile` finds the hot wallet's books equal to the chain.
    reference="sim-fund:$(printf '%s' "$funded" | "$VENV/python" -c 'import json, sys; print(json.load(sys.stdin)["txids"][0])')"
    (cd "$ROOT" && "$VENV/checkout" ledger record-funding --usdt 100000 --trx 10000 --reference "$reference" \
      >>"$LOGS/funding.log" 2>&1) \
      || die "funded, but not recorded in the ledger; run: checkout ledger record-funding --usdt 100000 --trx 10000 --reference $reference (see $LOGS/funding.log)"
    say "recorded in the ledger as $reference"
  fi
  say "hot wallet $address: $(curl -fsS "http://127.0.0.1:$SIM_PORT/sim/balance?address=$address")"
}

demo_merchant() { # → prints the demo merchant's API key (created once, kept in .local)
  local file="$LOCAL/demo-merchant.json" first="${WORKER_PORTS%% *}" key=""
  if [ -f "$file" ]; then
    key="$("$VENV/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["api_key"])' "$file")"
    # A database reset forgets the merchant: check the key still opens the API.
    curl -fs -o /dev/null -H "Authorization: Bearer $key" "http://127.0.0.1:$first/api/v1/settlements" || key=""
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

crypto-checkout is up at $LB_URL
  API, payment pages   $LB_URL   (nginx, TLS 1.3; http://localhost:$LB_HTTP_PORT redirects)
  TLS certificate      $LB_CERT   (self-signed unless LB_CERT names a real one)
  workers, directly    $all
  readiness            curl -s http://127.0.0.1:$((first + 1000))/readyz   (operators' listener)
  metrics              curl -s http://127.0.0.1:$((first + 1000))/metrics
  Tron node simulator  http://127.0.0.1:$SIM_PORT   (curl -s -X POST http://127.0.0.1:$SIM_PORT/wallet/getnodeinfo)
  Telegram Bot API     ${TELEGRAM_API_URL:-http://127.0.0.1:$TELEGRAM_SIM_PORT (stand-in; bot @$DEV_BOT_NAME, docs/notifications.md)}
  Kafka                $(bash "$ROOT/scripts/infra.sh" kafka-bootstrap)   ($KAFKA_NODES broker(s))${KAFKA_BROKER:+
                       the operator's CLI needs: export KAFKA_BROKER='$KAFKA_BROKER'}
  PostgreSQL           postgresql://checkout:checkout@127.0.0.1:5432/checkout
  Redis                redis://127.0.0.1:6379/0
  SMTP (mail kept)     127.0.0.1:1025 → $LOCAL/mail/Maildir
  signer               no listener (Kafka only); log $LOGS/signer.log
  dashboard            $LB_URL/dashboard   (docs/dashboard.md)
  logs                 $LOGS   (nginx: $LB_DIR/logs)

Try it (demo merchant "Demo Shop", API key in $LOCAL/demo-merchant.json):
  export CHECKOUT_API_KEY=$key
  export CURL_CA_BUNDLE=$LB_CERT   # curl trusts the local certificate
  curl -s -X POST $LB_URL/api/v1/invoices -H "Authorization: Bearer \$CHECKOUT_API_KEY" \\
       -H 'Content-Type: application/json' -d '{"amount": "9.99", "order_id": "demo-1"}'
  # open the payment page it names:      $LB_URL/pay/<invoice id>
  # pay it on the simulator (no wallet needed):
  curl -s -X POST http://127.0.0.1:$SIM_PORT/sim/transfer -d '{"to": "<deposit_address>", "amount": "9.99"}'
  # then watch it settle:
  curl -s $LB_URL/api/v1/invoices/<invoice id>/settlement -H "Authorization: Bearer \$CHECKOUT_API_KEY"
Stop everything with: make down
EOF
}

case "${1:-}" in
  up)
    case "${2:-all}" in
      sim) sim_up; telegram_sim_up ;;
      workers) workers_up ;;
      lb | nginx) lb_up ;;
      signer) signer_up ;;
      all) sim_up; telegram_sim_up; workers_up; lb_up; signer_up; summary ;;
      *) die "unknown part '${2}' (sim, workers, lb, signer, all)" ;;
    esac ;;
  down)
    stop signer
    stop nginx
    for port in $WORKER_PORTS; do stop "worker-$port"; done
    stop telegram-sim
    stop tron-sim ;;
  status)
    for entry in "tron-sim:$SIM_PORT" "telegram-sim:$TELEGRAM_SIM_PORT" $(for p in $WORKER_PORTS; do echo "worker-$p:$p"; done) "nginx:$LB_PORT"; do
      if port_open "${entry##*:}"; then state=up; else state=down; fi
      printf '  %-12s 127.0.0.1:%s  %s\n' "${entry%%:*}" "${entry##*:}" "$state"
    done ;;
  *) sed -n '2,9p' "$0" >&2; exit 2 ;;
esac
