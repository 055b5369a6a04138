#!/usr/bin/env bash
# Base backups of PostgreSQL: taken with pg_basebackup, verified, encrypted at rest, with
# retention (docs/operations.md, "Backups and recovery"; scripts/restore.sh restores them).
#
#   scripts/backup.sh                   one base backup now, then retention; prints one JSON line
#   scripts/backup.sh --schedule [SEC]  forever: a backup every SEC seconds (default 21600, 6 h)
#   scripts/backup.sh --list            the base backups kept, oldest first, one JSON line each
#   scripts/backup.sh --no-retention    a backup, deleting nothing
#
# BACKUP_DIR (default .local/backups) holds
#   base/<UTC time>/base.tar.<gz|zst>.enc   the data directory with the WAL that makes it consistent
#   base/<UTC time>/backup_manifest.enc     pg_basebackup's manifest (SHA-256 of every file)
#   base/<UTC time>/backup.json             what, when, from where (plain text, no data)
#   wal/<segment>.gz.enc                    the WAL archive, written by PostgreSQL's archive_command
#                                           (scripts/backup/archive-wal.sh, set up by scripts/infra.sh)
# A backup is written under base/.incomplete-*, checked with pg_verifybackup before it is
# encrypted, and renamed into place only when complete.
#
# BACKUP_RETENTION_DAYS (default 30): base backups finished longer ago are deleted (never the
#   newest), then the WAL the oldest kept one does not need (pg_archivecleanup).
# BACKUP_ENCRYPTION_KEY_FILE (default $BACKUP_DIR/backup.key, made on first use, mode 600): see
#   scripts/backup/lib.sh. Without it the backups cannot be read: keep a copy away from them.
# BACKUP_CHECKPOINT (fast|spread, default fast): the checkpoint that starts the backup.
#
# The cluster: libpq's environment (PGHOST, PGPORT, PGUSER, PGPASSWORD, …; a role with
# REPLICATION and a `replication` line in pg_hba.conf). Without PGHOST: the local cluster of
# scripts/infra.sh (socket .local/postgres/run, .local/postgres-PORT/run for another PG_PORT;
# user postgres). As root, the script runs itself as the postgres user, who owns the WAL archive.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCAL="${CHECKOUT_LOCAL_DIR:-$ROOT/.local}"
# scripts/infra.sh keeps a cluster on another PG_PORT under .local/postgres-PORT, archiving into
# .local/backups-PORT.
PG_LOCAL_SUFFIX="$([ "${PG_PORT:-5432}" = 5432 ] || echo "-$PG_PORT")"
export BACKUP_DIR="${BACKUP_DIR:-$LOCAL/backups$PG_LOCAL_SUFFIX}"
export BACKUP_ENCRYPTION_KEY_FILE="${BACKUP_ENCRYPTION_KEY_FILE:-$BACKUP_DIR/backup.key}"
RETENTION_DAYS="${BACKUP_RETENTION_DAYS:-30}"
CHECKPOINT="${BACKUP_CHECKPOINT:-fast}"
KEY="$BACKUP_ENCRYPTION_KEY_FILE"

# shellcheck source=scripts/backup/lib.sh
. "$ROOT/scripts/backup/lib.sh"

if [ -z "${PGHOST:-}" ]; then
  export PGHOST="$LOCAL/postgres$PG_LOCAL_SUFFIX/run" PGPORT="${PGPORT:-${PG_PORT:-5432}}" PGUSER="${PGUSER:-postgres}"
fi

if [ "$(id -u)" -eq 0 ] && [ -z "${BACKUP_RUN_AS_ROOT:-}" ] && id postgres >/dev/null 2>&1; then
  # PostgreSQL's tools refuse nothing as root, but the archive is the postgres user's: its
  # archive_command writes wal/, and pg_basebackup's copy must be readable by a restored server.
  for dir in "$BACKUP_DIR" "$BACKUP_DIR/base" "$BACKUP_DIR/wal"; do
    mkdir -p "$dir"
    chown postgres:postgres "$dir"
    chmod 700 "$dir"
  done
  backup_ensure_key "$KEY" # as root: its folder may be a mounted secret only root can write to
  chown postgres:postgres "$KEY" 2>/dev/null || backup_say "could not give $KEY to the postgres user"
  cd /
  exec runuser -u postgres -- "$ROOT/scripts/backup.sh" "$@"
fi

usage() { sed -n '2,29p' "$ROOT/scripts/backup.sh" >&2; exit 2; }

backups() { # → the complete base backups, oldest first (their directories)
  local dir
  for dir in "$BACKUP_DIR"/base/*/; do
    [ -f "$dir/backup.json" ] && echo "${dir%/}"
  done
  return 0
}

archiver_status() { # → a JSON object: the server's WAL archiving, as far as it can be asked
  local row
  row="$("$(pg_tool psql)" -X -qtA -F ' ' -d "${PGDATABASE:-postgres}" -c \
    "SELECT current_setting('archive_mode'), coalesce(last_archived_wal, ''), failed_count,
            coalesce(extract(epoch FROM now() - last_archived_time)::int::text, '')
       FROM pg_stat_archiver" 2>/dev/null)" || { echo '{}'; return 0; }
  read -r mode last failed age <<<"$row"
  printf '{"archive_mode": "%s", "last_archived_wal": "%s", "failed_count": %s, "seconds_since_last_archived": %s}' \
    "$mode" "$last" "${failed:-0}" "${age:-null}"
}

take_backup() { # → one JSON line on stdout
  local stamp dir tmp t0 started label start_wal timeline end_lsn finished bytes ext compress
  stamp="$(date -u +%Y%m%dT%H%M%SZ)"
  dir="$BACKUP_DIR/base/$stamp"
  tmp="$BACKUP_DIR/base/.incomplete-$stamp"
  [ -e "$dir" ] && backup_die "$dir exists already"
  backup_ensure_key "$KEY"
  backup_check_key "$KEY"
  if command -v zstd >/dev/null; then ext=zst compress="zstd -q -T0 -3 -c"; else ext=gz compress="gzip -c"; fi

  # Under the lock no other backup is running: what an interrupted one left goes.
  rm -rf "$BACKUP_DIR"/base/.incomplete-*
  mkdir -p "$tmp"
  # shellcheck disable=SC2064 # expand now: the trap must remove this backup's folder
  trap "rm -rf '$tmp'" EXIT
  t0="$(date +%s)"
  backup_say "pg_basebackup from ${PGHOST}:${PGPORT:-5432} into $tmp"
  "$(pg_tool pg_basebackup)" -D "$tmp/plain" -Fp -X stream -c "$CHECKPOINT" --no-password \
    --manifest-checksums=SHA256 -l "crypto-checkout $stamp" >&2 \
    || backup_die "pg_basebackup failed"
  if [ -n "$(ls -A "$tmp/plain/pg_tblspc" 2>/dev/null)" ]; then
    backup_die "the cluster has tablespaces, which this script does not back up"
  fi
  "$(pg_tool pg_verifybackup)" -q "$tmp/plain" >&2 || backup_die "pg_verifybackup found the copy broken"
  finished="$(date -u '+%Y-%m-%d %H:%M:%S+00')"

  label="$tmp/plain/backup_label"
  started="$(date -u -d "$(sed -n 's/^START TIME: //p' "$label")" '+%Y-%m-%d %H:%M:%S+00')"
  start_wal="$(sed -n 's/^START WAL LOCATION: .*(file \([0-9A-F]*\)).*/\1/p' "$label")"
  timeline="$(sed -n 's/^START TIMELINE: //p' "$label")"
  end_lsn="$(sed -n 's/.*"End-LSN": *"\([0-9A-F/]*\)".*/\1/p' "$tmp/plain/backup_manifest" | tail -n 1)"
  [ -n "$start_wal" ] || backup_die "no START WAL LOCATION in $label"

  # shellcheck disable=SC2086 # $compress is a command with its options
  tar -C "$tmp/plain" -cf - . | $compress | backup_encrypt "$KEY" >"$tmp/base.tar.$ext.enc"
  backup_encrypt "$KEY" <"$tmp/plain/backup_manifest" >"$tmp/backup_manifest.enc"
  bytes="$(du -sb "$tmp/plain" | cut -f1)"
  rm -rf "$tmp/plain"
  {
    echo "{"
    echo "  \"backup\": \"$stamp\","
    echo "  \"started_at\": \"$started\","
    echo "  \"finished_at\": \"$finished\","
    echo "  \"finished_epoch\": $(date -d "$finished" +%s),"
    echo "  \"start_wal\": \"$start_wal\","
    echo "  \"end_lsn\": \"$end_lsn\","
    echo "  \"timeline\": ${timeline:-1},"
    echo "  \"source\": $(json_string "${PGHOST}:${PGPORT:-5432}"),"
    echo "  \"data_bytes\": $bytes,"
    echo "  \"stored_bytes\": $(du -sb "$tmp" | cut -f1),"
    echo "  \"archive\": \"base.tar.$ext.enc\","
    echo "  \"sha256\": \"$(sha256sum "$tmp/base.tar.$ext.enc" | cut -d' ' -f1)\","
    echo "  \"cipher\": \"openssl aes-256-cbc pbkdf2-sha256 10000\","
    echo "  \"verified\": \"pg_verifybackup\""
    echo "}"
  } >"$tmp/backup.json"
  sync "$tmp"/* "$tmp"
  mv "$tmp" "$dir"
  sync "$BACKUP_DIR/base"
  trap - EXIT
  printf '{"event": "base_backup", "backup": %s, "started_at": "%s", "finished_at": "%s", "seconds": %s, "data_bytes": %s, "stored_bytes": %s, "encrypted": true, "verified": true' \
    "$(json_string "$dir")" "$started" "$finished" "$(($(date +%s) - t0))" "$bytes" \
    "$(json_field "$dir/backup.json" stored_bytes)"
}

apply_retention() { # → ends the JSON line of take_backup with what retention deleted
  local cutoff all newest dir deleted="" oldest wal_before wal_after start_wal file name
  cutoff=$(($(date +%s) - RETENTION_DAYS * 86400))
  mapfile -t all < <(backups)
  newest=""
  [ "${#all[@]}" -gt 0 ] && newest="${all[${#all[@]}-1]}"
  for dir in "${all[@]}"; do
    [ "$dir" = "$newest" ] && continue
    if [ "$(json_field "$dir/backup.json" finished_epoch)" -lt "$cutoff" ]; then
      rm -rf "$dir"
      deleted+="${deleted:+, }$(json_string "$(basename "$dir")")"
    fi
  done
  oldest="$(backups | head -n 1)"
  wal_before="$(find "$BACKUP_DIR/wal" -maxdepth 1 -type f | wc -l)"
  if [ -n "$oldest" ]; then
    start_wal="$(json_field "$oldest/backup.json" start_wal)"
    "$(pg_tool pg_archivecleanup)" -x .gz.enc "$BACKUP_DIR/wal" "$start_wal" \
      || backup_die "pg_archivecleanup failed"
    # It keeps the backup history files (<segment>.<offset>.backup): those of deleted backups go
    # too. Timeline history files (*.history) stay: they are tiny and a restore may need them.
    for file in "$BACKUP_DIR"/wal/*.backup.gz.enc; do
      name="$(basename "$file")"
      [ -f "$file" ] && [[ "${name:8:16}" < "${start_wal:8:16}" ]] && rm -f "$file"
    done
  fi
  wal_after="$(find "$BACKUP_DIR/wal" -maxdepth 1 -type f | wc -l)"
  printf ', "retention_days": %s, "deleted_backups": [%s], "deleted_wal_files": %s, "kept_backups": %s, "wal_files": %s' \
    "$RETENTION_DAYS" "$deleted" "$((wal_before - wal_after))" "$(backups | wc -l)" "$wal_after"
}

run_once() { # retention → one JSON line
  take_backup
  [ "$1" = yes ] && apply_retention
  printf ', "archiver": %s}\n' "$(archiver_status)"
}

list() {
  local dir
  while read -r dir; do
    tr -d '\n' <"$dir/backup.json" | sed 's/  */ /g'
    echo
  done < <(backups)
}

main() {
  local retention=yes schedule=""
  while [ "$#" -gt 0 ]; do
    case "$1" in
      --no-retention) retention=no ;;
      --schedule)
        schedule=21600
        if [[ "${2:-}" =~ ^[0-9]+$ ]]; then schedule="$2"; shift; fi ;;
      --list) list; return 0 ;;
      -h|--help) usage ;;
      *) backup_say "unknown argument: $1"; usage ;;
    esac
    shift
  done
  [[ "$RETENTION_DAYS" =~ ^[0-9]+$ ]] || backup_die "BACKUP_RETENTION_DAYS must be a whole number of days"
  mkdir -p "$BACKUP_DIR/base" "$BACKUP_DIR/wal"
  exec 9>"$BACKUP_DIR/.backup.lock"
  if [ -z "$schedule" ]; then
    flock -n 9 || backup_die "another backup.sh is running (lock: $BACKUP_DIR/.backup.lock)"
    run_once "$retention"
    return 0
  fi
  backup_say "a base backup every $schedule s into $BACKUP_DIR"
  while true; do
    # A failed backup is reported and tried again at the next slot; the loop keeps going.
    if flock -n 9; then
      (run_once "$retention") || backup_say "this backup failed; next attempt in $schedule s"
      flock -u 9
    else
      backup_say "another backup.sh is running; skipping this slot"
    fi
    sleep "$schedule"
  done
}

main "$@"
