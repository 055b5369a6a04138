#!/usr/bin/env bash
# Restore PostgreSQL from the backups of scripts/backup.sh into a NEW data directory, to a point
# in time or to the end of the WAL archive, and start it (docs/operations.md, "Backups and
# recovery").
#
#   scripts/restore.sh [--to TIME] [--backup DIR|NAME] [--target DATA_DIR] [--port PORT]
#                      [--force] [--archive] [--stop] [--superuser NAME] [--timeout SEC]
#
#   --to TIME      recover up to this moment ("2026-12-02 10:15:00+00"; give the zone). Default:
#                  everything the WAL archive holds. The archive must hold a transaction after
#                  TIME, or PostgreSQL stops with "recovery ended before configured recovery
#                  target was reached" (then restore without --to).
#   --backup B     this base backup (a directory, or its name under $BACKUP_DIR/base). Default:
#                  the newest one finished before TIME (the newest of all without --to).
#   --target DIR   the data directory to create (default .local/postgres-restore/data). Its
#                  parent gets run/ (the socket) and postgres.log. Refused when it exists and is
#                  not empty, unless --force; never over a running server.
#   --port PORT    where the restored server listens, on 127.0.0.1 (default 5433).
#   --archive      once promoted, the restored server archives its WAL (a new timeline) into the
#                  WAL archive: for the restore that becomes the platform's database. Without it
#                  (drills, rehearsals) it archives nothing and the archive stays as it was.
#   --stop         stop the server once recovery finished (default: leave it running).
#
# BACKUP_DIR (default .local/backups), BACKUP_ENCRYPTION_KEY_FILE (default $BACKUP_DIR/backup.key)
# as for scripts/backup.sh. Prints one JSON line: the backup used, the point recovered to (the
# last transaction replayed), the new timeline, the seconds it took. Run as root, it runs itself
# as the postgres user.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCAL="${CHECKOUT_LOCAL_DIR:-$ROOT/.local}"
export BACKUP_DIR="${BACKUP_DIR:-$LOCAL/backups}"
export BACKUP_ENCRYPTION_KEY_FILE="${BACKUP_ENCRYPTION_KEY_FILE:-$BACKUP_DIR/backup.key}"
KEY="$BACKUP_ENCRYPTION_KEY_FILE"
WAL_DIR="$BACKUP_DIR/wal"

# shellcheck source=scripts/backup/lib.sh
. "$ROOT/scripts/backup/lib.sh"

TO="" BACKUP="" TARGET="$LOCAL/postgres-restore/data" PORT=5433 FORCE=0 ARCHIVE=0 STOP=0
SUPERUSER=postgres TIMEOUT=3600

usage() { sed -n '2,30p' "$ROOT/scripts/restore.sh" >&2; exit 2; }

ORIGINAL_ARGS=("$@")

while [ "$#" -gt 0 ]; do
  case "$1" in
    --to) TO="${2:?--to needs a time}"; shift ;;
    --backup) BACKUP="${2:?--backup needs a directory}"; shift ;;
    --target) TARGET="${2:?--target needs a directory}"; shift ;;
    --port) PORT="${2:?--port needs a number}"; shift ;;
    --superuser) SUPERUSER="${2:?--superuser needs a name}"; shift ;;
    --timeout) TIMEOUT="${2:?--timeout needs seconds}"; shift ;;
    --force) FORCE=1 ;;
    --archive) ARCHIVE=1 ;;
    --stop) STOP=1 ;;
    -h|--help) usage ;;
    *) backup_say "unknown argument: $1"; usage ;;
  esac
  shift
done
[[ "$PORT" =~ ^[0-9]+$ ]] || backup_die "--port must be a number"
[[ "$TIMEOUT" =~ ^[0-9]+$ ]] || backup_die "--timeout must be seconds"
TARGET="$(realpath -m "$TARGET")"
WORK="$(dirname "$TARGET")"
SOCKET_DIR="$WORK/run"
LOG="$WORK/postgres.log"
TARGET_EPOCH=""
if [ -n "$TO" ]; then
  TARGET_EPOCH="$(date -d "$TO" +%s 2>/dev/null)" || backup_die "--to: cannot read '$TO' as a time"
fi

# ------------------------------------------------------------------------- the target directory --

if [ -f "$TARGET/postmaster.pid" ] && [ -d "/proc/$(head -n 1 "$TARGET/postmaster.pid")" ]; then
  backup_die "a PostgreSQL server is running from $TARGET; restore into another directory"
fi
if [ -e "$TARGET" ] && [ -n "$(ls -A "$TARGET" 2>/dev/null)" ]; then
  [ "$FORCE" -eq 1 ] || backup_die "$TARGET exists and is not empty (--force deletes what is there)"
  backup_say "--force: deleting the contents of $TARGET"
  find "$TARGET" -mindepth 1 -delete
fi

if [ "$(id -u)" -eq 0 ] && [ -z "${BACKUP_RUN_AS_ROOT:-}" ] && id postgres >/dev/null 2>&1; then
  mkdir -p "$TARGET" "$SOCKET_DIR"
  touch "$LOG"
  chown postgres:postgres "$TARGET" "$SOCKET_DIR" "$LOG"
  chmod 700 "$TARGET"
  cd /
  exec runuser -u postgres -- "$ROOT/scripts/restore.sh" "${ORIGINAL_ARGS[@]}"
fi
mkdir -p "$TARGET" "$SOCKET_DIR"
chmod 700 "$TARGET"

# ------------------------------------------------------------------------------ the base backup --

choose_backup() { # → the directory of the base backup to restore
  local dir best=""
  if [ -n "$BACKUP" ]; then
    [ -d "$BACKUP" ] || BACKUP="$BACKUP_DIR/base/$BACKUP"
    [ -f "$BACKUP/backup.json" ] || backup_die "$BACKUP is not a base backup (no backup.json)"
    if [ -n "$TARGET_EPOCH" ] && [ "$(json_field "$BACKUP/backup.json" finished_epoch)" -gt "$TARGET_EPOCH" ]; then
      backup_die "$BACKUP finished after $TO: a backup can only be rolled forward"
    fi
    echo "$BACKUP"
    return 0
  fi
  for dir in "$BACKUP_DIR"/base/*/; do
    dir="${dir%/}"
    [ -f "$dir/backup.json" ] || continue
    if [ -z "$TARGET_EPOCH" ] || [ "$(json_field "$dir/backup.json" finished_epoch)" -le "$TARGET_EPOCH" ]; then
      best="$dir" # names are UTC times: the last one that qualifies is the newest
    fi
  done
  [ -n "$best" ] || backup_die "no base backup in $BACKUP_DIR/base finished before ${TO:-now}"
  echo "$best"
}

extract() { # backup → the data directory, decrypted, decompressed and verified
  local backup="$1" archive sum decompress
  archive="$backup/$(json_field "$backup/backup.json" archive)"
  [ -f "$archive" ] || backup_die "$archive is missing"
  sum="$(json_field "$backup/backup.json" sha256)"
  if [ -n "$sum" ] && [ "$(sha256sum "$archive" | cut -d' ' -f1)" != "$sum" ]; then
    backup_die "$archive does not match the checksum recorded when it was written"
  fi
  case "$archive" in
    *.zst.enc) command -v zstd >/dev/null || backup_die "zstd is needed for $archive"; decompress="zstd -q -d -c" ;;
    *.gz.enc) decompress="gzip -d -c" ;;
    *) backup_die "unknown archive format: $archive" ;;
  esac
  backup_check_key "$KEY"
  backup_say "decrypting and extracting $archive into $TARGET"
  # shellcheck disable=SC2086 # $decompress is a command with its options
  backup_decrypt "$KEY" <"$archive" | $decompress | tar -C "$TARGET" -xf - \
    || backup_die "could not decrypt or extract $archive (wrong key? BACKUP_ENCRYPTION_KEY_FILE=$KEY)"
  chmod 700 "$TARGET"
  "$(pg_tool pg_verifybackup)" -q "$TARGET" >&2 || backup_die "pg_verifybackup: the restored files do not match the backup's manifest"
  rm -f "$TARGET/postmaster.pid" "$TARGET/postmaster.opts"
}

configure_recovery() {
  local quote="'"
  {
    echo "# scripts/restore.sh: recovery settings, reset once recovery finished"
    echo "restore_command = '\"$ROOT/scripts/backup/restore-wal.sh\" \"%f\" \"%p\" \"$WAL_DIR\" \"$KEY\"'"
    echo "recovery_target_time = '${TO//$quote/}'"
    echo "recovery_target_action = 'promote'"
    echo "recovery_target_timeline = 'latest'"
  } >>"$TARGET/postgresql.auto.conf"
  touch "$TARGET/recovery.signal"
}

server_options() { # → pg_ctl -o: where it listens, and whether it archives once promoted
  local options="-c listen_addresses=127.0.0.1 -p $PORT -k $SOCKET_DIR -c max_connections=200"
  # No hot standby: nothing connects before recovery finished, and the primary's settings
  # (max_connections, …) recorded in the WAL cannot pause the recovery.
  options+=" -c hot_standby=off"
  if [ "$ARCHIVE" -eq 1 ]; then
    options+=" -c archive_mode=on -c archive_timeout=${PG_ARCHIVE_TIMEOUT:-60}"
    options+=" -c 'archive_command=\"$ROOT/scripts/backup/archive-wal.sh\" \"%p\" \"%f\" \"$WAL_DIR\" \"$KEY\"'"
  else
    options+=" -c archive_mode=off"
  fi
  echo "$options"
}

psql_restored() { # sql → its rows
  "$(pg_tool psql)" -X -h "$SOCKET_DIR" -p "$PORT" -U "$SUPERUSER" -d postgres -v ON_ERROR_STOP=1 -qtAc "$1"
}

LOG_OFFSET=0 # where this run's lines start in the log

explain_failure() { # → the lines of this run's log that say why, and what to do
  tail -c +"$((LOG_OFFSET + 1))" "$LOG" | grep -E 'FATAL|PANIC|restore-wal' | tail -n 5 >&2
  if tail -c +"$((LOG_OFFSET + 1))" "$LOG" | grep -q 'recovery ended before configured recovery target was reached'; then
    backup_say "the WAL archive holds no transaction after --to $TO: restore without --to (to its end)"
  fi
}

wait_recovered() { # deadline → returns once the server accepts connections: recovery finished
  # The postmaster's status line in postmaster.pid says "ready" once it accepts connections,
  # which without hot standby is after it promoted; if recovery fails (the target not reached,
  # a broken WAL file) the server exits, the file goes, and the log says why.
  local pidfile="$TARGET/postmaster.pid" status started=$((SECONDS + 30))
  # pg_ctl -W returns before the postmaster wrote its pid file.
  while [ ! -f "$pidfile" ] && ((SECONDS < started)); do sleep 0.1; done
  while true; do
    if [ ! -f "$pidfile" ]; then
      explain_failure
      backup_die "the restored server stopped before recovery finished (log: $LOG)"
    fi
    status="$(sed -n 8p "$pidfile" 2>/dev/null | tr -d ' ')"
    [ "$status" = ready ] && return 0
    if ((SECONDS >= $1)); then
      explain_failure
      backup_die "recovery did not finish within $TIMEOUT s (log: $LOG); the server is still running"
    fi
    sleep 0.2
  done
}

main() {
  local t0 backup info in_recovery recovered wal lsn timeline running=true
  t0="$(date +%s.%N)"
  [ -d "$WAL_DIR" ] || backup_die "no WAL archive at $WAL_DIR"
  backup="$(choose_backup)"
  backup_say "restoring base backup $backup${TO:+ up to $TO} into $TARGET (port $PORT)"
  extract "$backup"
  configure_recovery
  backup_say "replaying the WAL archive (log: $LOG)"
  [ -f "$LOG" ] && LOG_OFFSET="$(stat -c %s "$LOG")"
  "$(pg_tool pg_ctl)" -D "$TARGET" -l "$LOG" -W -o "$(server_options)" start >/dev/null \
    || backup_die "pg_ctl could not start the restored server (log: $LOG)"
  wait_recovered "$((SECONDS + TIMEOUT))"
  info="$(psql_restored "SELECT pg_is_in_recovery(), coalesce(pg_last_xact_replay_timestamp()::text, ''),
                                pg_walfile_name(pg_current_wal_lsn()), pg_current_wal_lsn()")"
  IFS='|' read -r in_recovery recovered wal lsn <<<"$info"
  [ "$in_recovery" = f ] || backup_die "the restored server is still in recovery (log: $LOG)"
  timeline=$((16#${wal:0:8}))
  # The recovery settings leave postgresql.auto.conf: inert in a promoted server, and gone at
  # its next start.
  psql_restored "ALTER SYSTEM RESET restore_command" >/dev/null
  psql_restored "ALTER SYSTEM RESET recovery_target_time" >/dev/null
  psql_restored "ALTER SYSTEM RESET recovery_target_action" >/dev/null
  psql_restored "ALTER SYSTEM RESET recovery_target_timeline" >/dev/null
  if [ "$STOP" -eq 1 ]; then
    "$(pg_tool pg_ctl)" -D "$TARGET" -m fast -w stop >/dev/null
    running=false
  fi
  printf '{"event": "restore", "backup": %s, "target_time": %s, "recovered_to": %s, "timeline": %s, "lsn": "%s", "data_dir": %s, "port": %s, "socket_dir": %s, "archiving": %s, "running": %s, "seconds": %.1f}\n' \
    "$(json_string "$backup")" "$(if [ -n "$TO" ]; then json_string "$TO"; else echo '"latest"'; fi)" \
    "$(if [ -n "$recovered" ]; then json_string "$recovered"; else echo null; fi)" "$timeline" "$lsn" "$(json_string "$TARGET")" "$PORT" \
    "$(json_string "$SOCKET_DIR")" "$([ "$ARCHIVE" -eq 1 ] && echo true || echo false)" "$running" \
    "$(awk -v t0="$t0" -v t1="$(date +%s.%N)" 'BEGIN { print t1 - t0 }')"
}

main
