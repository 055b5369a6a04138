#!/usr/bin/env bash
# Local infrastructure for crypto-checkout: Kafka (KRaft, official jars from Maven Central),
# PostgreSQL and Redis on loopback, with every byte they write under .local/.
#
#   scripts/infra.sh up [kafka|postgres|redis|smtp|browser|nginx|all]  install what is missing, start, wait until usable
#                                     (browser and nginx only install: Chromium, the load balancer)
#   scripts/infra.sh down [kafka|postgres|redis|all]  stop what this script started
#   scripts/infra.sh status                           what listens where
#   scripts/infra.sh kafka-stop-node N / kafka-start-node N   (fault tests: one broker of a cluster)
#
# Idempotent: a service already listening on its port is reused as it is, a formatted Kafka
# storage is never formatted again, downloaded jars are kept. Run as root or as a normal user;
# as root, PostgreSQL runs as the `postgres` user (it refuses to run as root).
#
# Kafka cluster shape (the fault tests start a 3-node cluster the same way):
#   KAFKA_NODES=1|3     combined broker+controller nodes (default 1)
#   KAFKA_BASE_PORT     node i listens on BASE+10*(i-1) (clients) and BASE+1+10*(i-1) (controller)
#                       default 9092 → 9092/9093, 9102/9103, 9112/9113
# With 3 nodes, topics default to replication factor 3 and min.insync.replicas 2.
#
# PostgreSQL and Redis on other ports (the fault tests run their own on 15432 and 16379):
#   PG_PORT (default 5432)      data under .local/postgres, or .local/postgres-PORT on another port
#                               (its WAL archive under .local/backups-PORT; PG_ARCHIVE=off: none)
#   REDIS_PORT (default 6379)   data under .local/redis, or .local/redis-PORT on another port
# `PG_PORT=15432 scripts/infra.sh down postgres` stops only that one.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCAL="${CHECKOUT_LOCAL_DIR:-$ROOT/.local}"
LOGS="$LOCAL/logs"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"

KAFKA_NODES="${KAFKA_NODES:-1}"
KAFKA_BASE_PORT="${KAFKA_BASE_PORT:-9092}"
KAFKA_HEAP="${KAFKA_HEAP:-512m}"
PG_PORT="${PG_PORT:-5432}"
PG_USER="${PG_USER:-checkout}"
PG_PASSWORD="${PG_PASSWORD:-checkout}"
PG_DATABASE="${PG_DATABASE:-checkout}"
REDIS_PORT="${REDIS_PORT:-6379}"
# Each server's files: .local/postgres and .local/redis on the default ports, .local/postgres-PORT
# and .local/redis-PORT on any other, so a second instance (the fault tests' own, on 15432 and
# 16379) never touches the development one's data, socket or pidfile.
PG_LOCAL_NAME="postgres"; [ "$PG_PORT" = 5432 ] || PG_LOCAL_NAME="postgres-$PG_PORT"
REDIS_LOCAL_NAME="redis"; [ "$REDIS_PORT" = 6379 ] || REDIS_LOCAL_NAME="redis-$REDIS_PORT"
# PostgreSQL archives its WAL into $BACKUP_DIR/wal (encrypted; scripts/backup/archive-wal.sh) and
# switches to a new segment at least every PG_ARCHIVE_TIMEOUT seconds while it writes: the most a
# lost data directory can take with it (docs/operations.md, "Backups and recovery"). PG_ARCHIVE=off
# turns archiving off.
# (Another port's cluster archives into backups-PORT: two clusters' WAL never share a folder.)
BACKUP_DIR="${BACKUP_DIR:-$LOCAL/backups$([ "$PG_PORT" = 5432 ] || echo "-$PG_PORT")}"
BACKUP_ENCRYPTION_KEY_FILE="${BACKUP_ENCRYPTION_KEY_FILE:-$BACKUP_DIR/backup.key}"
PG_ARCHIVE="${PG_ARCHIVE:-on}"
PG_ARCHIVE_TIMEOUT="${PG_ARCHIVE_TIMEOUT:-60}"

mkdir -p "$LOGS"

say() { printf '\033[1m[infra]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[31m[infra] error:\033[0m %s\n' "$*" >&2; exit 1; }

port_open() { # host port → 0 when something accepts connections there
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0 || return 1
}

wait_port() { # host port seconds what logfile
  local deadline=$((SECONDS + $3))
  until port_open "$1" "$2"; do
    if ((SECONDS >= deadline)); then
      [ -n "${5:-}" ] && [ -f "$5" ] && tail -n 30 "$5" >&2
      die "$4 did not open $1:$2 within $3 s (log: ${5:-none})"
    fi
    sleep 0.3
  done
}

APT_UPDATED=0
apt_install() { # packages… (Debian; idempotent)
  command -v apt-get >/dev/null || die "need to install $*, but apt-get is not available: install them by hand"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if [ "$APT_UPDATED" -eq 0 ]; then
    say "apt-get update"
    $sudo apt-get update -qq >"$LOGS/apt.log" 2>&1 || die "apt-get update failed (see $LOGS/apt.log)"
    APT_UPDATED=1
  fi
  say "installing Debian packages: $*"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" \
    >>"$LOGS/apt.log" 2>&1 || die "apt-get install $* failed (see $LOGS/apt.log)"
}

# --------------------------------------------------------------------------------------- Kafka --

KAFKA_LIBS="$LOCAL/kafka/libs"

java_major() {
  java -version 2>&1 | awk -F'"' '/version/ {split($2, v, "."); print (v[1] == "1" ? v[2] : v[1]); exit}'
}

ensure_java() {
  if ! command -v java >/dev/null || [ "$(java_major)" -lt 17 ]; then
    apt_install openjdk-17-jre-headless
  fi
  [ "$(java_major)" -ge 17 ] || die "Kafka 4 needs Java 17+, found: $(java -version 2>&1 | head -1)"
  command -v mvn >/dev/null || apt_install maven
}

fetch_kafka_jars() {
  # The marker holds the POM's checksum: changing the Kafka version in the POM refetches.
  local pom="$ROOT/scripts/kafka/pom.xml" marker="$KAFKA_LIBS/.pom.sha256" sum
  sum="$(sha256sum "$pom" | cut -d' ' -f1)"
  if [ -f "$marker" ] && [ "$(cat "$marker")" = "$sum" ]; then
    return 0
  fi
  ensure_java
  say "fetching Kafka jars from Maven Central into $KAFKA_LIBS"
  rm -rf "$KAFKA_LIBS"
  mkdir -p "$KAFKA_LIBS"
  mvn -q -B -f "$pom" dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory="$KAFKA_LIBS" >"$LOGS/maven.log" 2>&1 \
    || { tail -n 30 "$LOGS/maven.log" >&2; die "mvn could not fetch the Kafka jars (see $LOGS/maven.log)"; }
  echo "$sum" >"$marker"
}

kafka_cluster_dir() { echo "$LOCAL/kafka/cluster-${KAFKA_NODES}n-${KAFKA_BASE_PORT}"; }
kafka_port() { echo $((KAFKA_BASE_PORT + 10 * ($1 - 1))); }
kafka_controller_port() { echo $((KAFKA_BASE_PORT + 1 + 10 * ($1 - 1))); }

kafka_bootstrap() {
  local i out=""
  for ((i = 1; i <= KAFKA_NODES; i++)); do out+="${out:+,}127.0.0.1:$(kafka_port "$i")"; done
  echo "$out"
}

write_kafka_config() { # node → writes server.properties and log4j2.xml for that node
  local node="$1" dir voters="" i rf isr
  dir="$(kafka_cluster_dir)/node-$node"
  mkdir -p "$dir/data" "$dir/logs"
  for ((i = 1; i <= KAFKA_NODES; i++)); do
    voters+="${voters:+,}$i@127.0.0.1:$(kafka_controller_port "$i")"
  done
  if [ "$KAFKA_NODES" -ge 3 ]; then rf=3; isr=2; else rf="$KAFKA_NODES"; isr=1; fi
  cat >"$dir/server.properties" <<EOF
# Written by scripts/infra.sh; edits are overwritten on the next start.
process.roles=broker,controller
node.id=$node
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$(kafka_port "$node"),CONTROLLER://127.0.0.1:$(kafka_controller_port "$node")
advertised.listeners=PLAINTEXT://127.0.0.1:$(kafka_port "$node")
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data
num.partitions=1
default.replication.factor=$rf
min.insync.replicas=$isr
offsets.topic.replication.factor=$rf
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$isr
group.initial.rebalance.delay.ms=0
# Topics are declared by the workers with their partition counts; a stray producer must not
# create one with the wrong count (a table's source and changelog must match).
auto.create.topics.enable=false
log.retention.hours=168
EOF
  cat >"$dir/log4j2.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN">
  <Appenders>
    <RollingFile name="file" fileName="$dir/logs/server.log" filePattern="$dir/logs/server.log.%i">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
      <Policies><SizeBasedTriggeringPolicy size="50 MB"/></Policies>
      <DefaultRolloverStrategy max="3"/>
    </RollingFile>
  </Appenders>
  <Loggers>
    <Logger name="kafka" level="INFO"/>
    <Logger name="org.apache.kafka" level="INFO"/>
    <Logger name="state.change.logger" level="WARN"/>
    <Root level="INFO"><AppenderRef ref="file"/></Root>
  </Loggers>
</Configuration>
EOF
}

kafka_java() { # args… → runs a Kafka main class with the fetched classpath
  java -Xmx"$KAFKA_HEAP" -Xms"$KAFKA_HEAP" -XX:+UseG1GC -Djava.awt.headless=true \
    -cp "$KAFKA_LIBS/*" "$@"
}

format_kafka_storage() { # node → formats once; a formatted node keeps its data
  local node="$1" dir cluster_id_file
  dir="$(kafka_cluster_dir)/node-$node"
  [ -f "$dir/data/meta.properties" ] && return 0
  cluster_id_file="$(kafka_cluster_dir)/cluster.id"
  [ -f "$cluster_id_file" ] || kafka_java kafka.tools.StorageTool random-uuid | tail -n 1 >"$cluster_id_file"
  say "formatting KRaft storage of node $node (cluster $(cat "$cluster_id_file"))"
  kafka_java -Dlog4j2.configurationFile="$dir/log4j2.xml" kafka.tools.StorageTool format \
    -t "$(cat "$cluster_id_file")" -c "$dir/server.properties" >"$dir/logs/format.log" 2>&1 \
    || { cat "$dir/logs/format.log" >&2; die "formatting Kafka storage failed for node $node"; }
}

start_kafka_node() {
  local node="$1" dir port
  dir="$(kafka_cluster_dir)/node-$node"
  port="$(kafka_port "$node")"
  if port_open 127.0.0.1 "$port"; then
    say "Kafka node $node: something already listens on 127.0.0.1:$port, reusing it"
    return 0
  fi
  write_kafka_config "$node"
  format_kafka_storage "$node"
  say "starting Kafka node $node on 127.0.0.1:$port (log: $dir/logs/server.log)"
  # setsid: the broker outlives the make/pytest process that started it.
  setsid bash -c "exec java -Xmx$KAFKA_HEAP -Xms$KAFKA_HEAP -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile='$dir/log4j2.xml' -Dkafka.logs.dir='$dir/logs' \
    -cp '$KAFKA_LIBS/*' kafka.Kafka '$dir/server.properties'" \
    >"$dir/logs/stdout.log" 2>&1 </dev/null &
  echo $! >"$dir/kafka.pid"
}

wait_kafka_metadata() {
  local bootstrap
  bootstrap="$(kafka_bootstrap)"
  [ -x "$PYTHON" ] || die "no Python environment at $PYTHON: run 'make install' first"
  "$PYTHON" "$ROOT/scripts/wait_kafka.py" --bootstrap "$bootstrap" --brokers "$KAFKA_NODES" --timeout 90 \
    || { tail -n 30 "$(kafka_cluster_dir)/node-1/logs/server.log" >&2 2>/dev/null; die "Kafka at $bootstrap gave no metadata"; }
}

kafka_up() {
  local i
  fetch_kafka_jars
  ensure_java
  for ((i = 1; i <= KAFKA_NODES; i++)); do start_kafka_node "$i"; done
  for ((i = 1; i <= KAFKA_NODES; i++)); do
    wait_port 127.0.0.1 "$(kafka_port "$i")" 90 "Kafka node $i" "$(kafka_cluster_dir)/node-$i/logs/server.log"
  done
  wait_kafka_metadata
  say "Kafka ready: $(kafka_bootstrap)"
}

stop_pidfile() { # pidfile what
  local pidfile="$1" pid
  [ -f "$pidfile" ] || return 0
  pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    say "stopping $2 (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && { say "$2 did not stop in 30 s, killing it"; kill -KILL "$pid" 2>/dev/null || true; }
  fi
  rm -f "$pidfile"
}

kafka_down() {
  local i
  for ((i = KAFKA_NODES; i >= 1; i--)); do
    stop_pidfile "$(kafka_cluster_dir)/node-$i/kafka.pid" "Kafka node $i"
  done
}

# ---------------------------------------------------------------------------------- PostgreSQL --

PG_DIR="$LOCAL/$PG_LOCAL_NAME"
PG_DATA="$PG_DIR/data"
PG_SOCKET_DIR="$PG_DIR/run"

pg_bindir() {
  local dir
  dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
  [ -n "$dir" ] && [ -x "$dir/pg_ctl" ] && echo "$dir"
}

pg_as_owner() { # command… → run as the PostgreSQL owner (postgres when we are root)
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

ensure_postgres_installed() {
  if [ -z "$(pg_bindir)" ]; then apt_install postgresql postgresql-contrib; fi
  local bin major
  bin="$(pg_bindir)" || die "PostgreSQL server binaries not found under /usr/lib/postgresql"
  major="$("$bin/postgres" --version | awk '{print $3}' | cut -d. -f1)"
  [ "$major" -ge 15 ] || die "PostgreSQL 15+ is required, found $major"
}

postgres_psql() { # sql → runs as the superuser over our own socket
  pg_as_owner "$(pg_bindir)/psql" -h "$PG_SOCKET_DIR" -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -qtAc "$1"
}

postgres_archiving() { # → the server options for WAL archiving; prepares the archive and its key
  if [ "$PG_ARCHIVE" = off ]; then
    echo " -c archive_mode=off"
    return 0
  fi
  if ! [[ "$PG_ARCHIVE_TIMEOUT" =~ ^[0-9]+$ ]] || [ "$PG_ARCHIVE_TIMEOUT" -lt 1 ] || [ "$PG_ARCHIVE_TIMEOUT" -gt 300 ]; then
    die "PG_ARCHIVE_TIMEOUT must be 1 to 300 seconds (the RPO is 15 minutes)"
  fi
  command -v openssl >/dev/null || apt_install openssl
  mkdir -p "$BACKUP_DIR/wal" "$BACKUP_DIR/base"
  if [ ! -s "$BACKUP_ENCRYPTION_KEY_FILE" ]; then
    say "making the backup encryption key $BACKUP_ENCRYPTION_KEY_FILE (keep a copy away from the backups)"
    (umask 077 && openssl rand -base64 48 >"$BACKUP_ENCRYPTION_KEY_FILE")
  fi
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres:postgres "$BACKUP_DIR" "$BACKUP_DIR/wal" "$BACKUP_DIR/base" "$BACKUP_ENCRYPTION_KEY_FILE"
  fi
  chmod 700 "$BACKUP_DIR" "$BACKUP_DIR/wal" "$BACKUP_DIR/base"
  # pg_basebackup connects for replication over the socket (initdb writes this line; older
  # clusters get it here).
  if ! grep -Eq '^[[:space:]]*local[[:space:]]+replication[[:space:]]' "$PG_DATA/pg_hba.conf"; then
    echo "local   replication     all                                     trust" \
      | pg_as_owner tee -a "$PG_DATA/pg_hba.conf" >/dev/null
  fi
  # -c options rather than postgresql.conf: a cluster initialised before gets them at its next
  # start, and a base backup does not carry them into a restored copy (scripts/restore.sh decides).
  echo " -c wal_level=replica -c max_wal_senders=10 -c archive_mode=on -c archive_timeout=$PG_ARCHIVE_TIMEOUT" \
    "-c 'archive_command=\"$ROOT/scripts/backup/archive-wal.sh\" \"%p\" \"%f\" \"$BACKUP_DIR/wal\" \"$BACKUP_ENCRYPTION_KEY_FILE\"'"
}

postgres_up() {
  local owned=1
  if port_open 127.0.0.1 "$PG_PORT"; then
    if [ -S "$PG_SOCKET_DIR/.s.PGSQL.$PG_PORT" ]; then
      say "PostgreSQL already running from $PG_DATA"
    else
      say "PostgreSQL: something already listens on 127.0.0.1:$PG_PORT, reusing it (role and database must exist)"
      owned=0
    fi
  else
    ensure_postgres_installed
    local bin
    bin="$(pg_bindir)"
    mkdir -p "$PG_DIR"
    [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$PG_DIR"
    pg_as_owner mkdir -p "$PG_SOCKET_DIR"
    if [ ! -f "$PG_DATA/PG_VERSION" ]; then
      say "initialising a PostgreSQL cluster in $PG_DATA"
      pg_as_owner "$bin/initdb" -D "$PG_DATA" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
        -E UTF8 --locale=C.UTF-8 >"$LOGS/$PG_LOCAL_NAME-initdb.log" 2>&1 \
        || { cat "$LOGS/$PG_LOCAL_NAME-initdb.log" >&2; die "initdb failed"; }
    fi
    local archiving
    archiving="$(postgres_archiving)"
    say "starting PostgreSQL on 127.0.0.1:$PG_PORT (log: $PG_DIR/postgres.log; WAL archive: $([ "$PG_ARCHIVE" = off ] && echo off || echo "$BACKUP_DIR/wal"))"
    pg_as_owner "$bin/pg_ctl" -D "$PG_DATA" -l "$PG_DIR/postgres.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_SOCKET_DIR -c max_connections=200 -c fsync=${PG_FSYNC:-on}$archiving" \
      start >/dev/null || { tail -n 30 "$PG_DIR/postgres.log" >&2; die "PostgreSQL did not start"; }
  fi
  if [ "$owned" -eq 1 ]; then
    postgres_psql "DO \$\$ BEGIN
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_USER') THEN
          CREATE ROLE $PG_USER LOGIN PASSWORD '$PG_PASSWORD';
        END IF; END \$\$;"
    if [ -z "$(postgres_psql "SELECT 1 FROM pg_database WHERE datname = '$PG_DATABASE'")" ]; then
      postgres_psql "CREATE DATABASE $PG_DATABASE OWNER $PG_USER"
    fi
  fi
  "$PYTHON" -m app.adapters.postgres.migrations --database-url "postgresql://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/$PG_DATABASE"
  say "PostgreSQL ready: postgresql://$PG_USER:***@127.0.0.1:$PG_PORT/$PG_DATABASE"
}

postgres_down() {
  [ -f "$PG_DATA/postmaster.pid" ] || return 0
  say "stopping PostgreSQL"
  pg_as_owner "$(pg_bindir)/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null || true
}

# --------------------------------------------------------------------------------------- Redis --

REDIS_DIR="$LOCAL/$REDIS_LOCAL_NAME"

redis_up() {
  if port_open 127.0.0.1 "$REDIS_PORT"; then
    say "Redis: something already listens on 127.0.0.1:$REDIS_PORT, reusing it"
    return 0
  fi
  command -v redis-server >/dev/null || apt_install redis-server
  local major
  major="$(redis-server --version | sed -E 's/.*v=([0-9]+).*/\1/')"
  [ "$major" -ge 7 ] || die "Redis 7+ is required, found $(redis-server --version)"
  mkdir -p "$REDIS_DIR"
  say "starting Redis on 127.0.0.1:$REDIS_PORT (log: $REDIS_DIR/redis.log)"
  # Redis holds live views, rate-limit buckets and pub/sub fan-out, nothing durable (PostgreSQL and
  # Kafka are the record). The append-only file, flushed every second, lets a restart keep the
  # buckets and views instead of starting cold; no RDB snapshots.
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --daemonize yes --dir "$REDIS_DIR" \
    --pidfile "$REDIS_DIR/redis.pid" --logfile "$REDIS_DIR/redis.log" --save "" \
    --appendonly yes --appendfsync everysec \
    || die "redis-server did not start (see $REDIS_DIR/redis.log)"
  wait_port 127.0.0.1 "$REDIS_PORT" 20 Redis "$REDIS_DIR/redis.log"
  say "Redis ready: redis://127.0.0.1:$REDIS_PORT/0"
}

redis_down() { stop_pidfile "$REDIS_DIR/redis.pid" Redis; }

# ---------------------------------------------------------------------------------------- SMTP --
# A real SMTP server (aiosmtpd, installed into .venv by scripts/install.sh) that keeps every message
# it receives in the Maildir .local/mail/: the platform's emails (sign-up links) as received.

SMTP_PORT="${SMTP_PORT:-1025}"
SMTP_DIR="$LOCAL/mail"

smtp_up() {
  if port_open 127.0.0.1 "$SMTP_PORT"; then
    say "SMTP: something already listens on 127.0.0.1:$SMTP_PORT, reusing it"
    return 0
  fi
  [ -x "$ROOT/.venv/bin/python" ] || die "run scripts/install.sh first (the SMTP server lives in .venv)"
  mkdir -p "$SMTP_DIR"
  say "starting the SMTP server on 127.0.0.1:$SMTP_PORT (mail: $SMTP_DIR, log: $SMTP_DIR/smtp.log)"
  nohup "$ROOT/.venv/bin/python" -m aiosmtpd -n -l "127.0.0.1:$SMTP_PORT" \
    -c aiosmtpd.handlers.Mailbox "$SMTP_DIR/Maildir" >"$SMTP_DIR/smtp.log" 2>&1 &
  echo $! >"$SMTP_DIR/smtp.pid"
  wait_port 127.0.0.1 "$SMTP_PORT" 20 "the SMTP server" "$SMTP_DIR/smtp.log"
  say "SMTP ready: 127.0.0.1:$SMTP_PORT"
}

smtp_down() { stop_pidfile "$SMTP_DIR/smtp.pid" "the SMTP server"; }

# ------------------------------------------------------------------------------------- browser --
# The browser tier's Chromium and its driver: Debian's packages, driven by Selenium (tests/browser).

browser_up() {
  if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    apt_install chromium chromium-driver fonts-dejavu-core
  fi
  say "Chromium ready: $(chromium --version 2>/dev/null | head -n 1)"
}

# --------------------------------------------------------------------------------------- nginx --
# The load balancer in front of the workers (docs/load-balancer.md): Debian's nginx and openssl
# (the local certificate). Only installed here; scripts/platform.sh runs nginx with its own
# configuration under .local/nginx, never /etc/nginx. On a machine with systemd the package also
# enables its own service (a welcome page on port 80): ours does not use it, and
# `systemctl disable --now nginx` turns it off.

nginx_bin() { # → the nginx binary (/usr/sbin is not on every user's PATH)
  local bin
  for bin in "$(command -v nginx 2>/dev/null || true)" /usr/sbin/nginx; do
    if [ -n "$bin" ] && [ -x "$bin" ]; then echo "$bin"; return 0; fi
  done
  return 1
}

nginx_up() {
  local missing=()
  nginx_bin >/dev/null || missing+=(nginx)
  command -v openssl >/dev/null || missing+=(openssl)
  [ "${#missing[@]}" -eq 0 ] || apt_install "${missing[@]}"
  nginx_bin >/dev/null || die "nginx is not installed (apt-get install nginx)"
  local build
  build="$("$(nginx_bin)" -V 2>&1)"
  [[ "$build" == *--with-http_ssl_module* ]] || die "$(nginx_bin) has no TLS (http_ssl_module)"
  say "nginx ready: $("$(nginx_bin)" -v 2>&1 | sed 's/^nginx version: //') at $(nginx_bin)"
}

# ---------------------------------------------------------------------------------------- main --

status() {
  local name host port
  while read -r name host port; do
    if port_open "$host" "$port"; then printf '  %-12s %s:%s  up\n' "$name" "$host" "$port"
    else printf '  %-12s %s:%s  down\n' "$name" "$host" "$port"; fi
  done <<EOF
kafka 127.0.0.1 $KAFKA_BASE_PORT
postgres 127.0.0.1 $PG_PORT
redis 127.0.0.1 $REDIS_PORT
smtp 127.0.0.1 $SMTP_PORT
EOF
}

main() {
  local action="${1:-}" what="${2:-all}"
  case "$action" in
    up)
      case "$what" in
        kafka) kafka_up ;; postgres) postgres_up ;; redis) redis_up ;; smtp) smtp_up ;;
        browser) browser_up ;; nginx) nginx_up ;;
        all) redis_up; postgres_up; smtp_up; kafka_up ;;
        *) die "unknown service '$what' (kafka, postgres, redis, smtp, browser, nginx, all)" ;;
      esac ;;
    down)
      case "$what" in
        kafka) kafka_down ;; postgres) postgres_down ;; redis) redis_down ;; smtp) smtp_down ;;
        all) kafka_down; postgres_down; redis_down; smtp_down ;;
        *) die "unknown service '$what' (kafka, postgres, redis, smtp, all)" ;;
      esac ;;
    status) status ;;
    kafka-stop-node) stop_pidfile "$(kafka_cluster_dir)/node-${2:?node number}/kafka.pid" "Kafka node $2" ;;
    kafka-start-node) fetch_kafka_jars; start_kafka_node "${2:?node number}"
      wait_port 127.0.0.1 "$(kafka_port "$2")" 90 "Kafka node $2" "$(kafka_cluster_dir)/node-$2/logs/server.log" ;;
    kafka-bootstrap) kafka_bootstrap ;;
    *) sed -n '2,20p' "$0" >&2; exit 2 ;;
  esac
}

main "$@"
