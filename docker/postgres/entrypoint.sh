#!/usr/bin/env bash
# The entrypoint of docker-compose.yml's `postgres` service: gets the WAL archive ready the way
# scripts/infra.sh does for the local cluster (postgres_archiving), then hands over to the image's
# own entrypoint with the service's command (archive_mode=on, archive_command=archive-wal.sh …).
#
#   BACKUP_DIR                  the backups volume; PostgreSQL archives into $BACKUP_DIR/wal
#   BACKUP_ENCRYPTION_KEY_FILE  the key archive-wal.sh encrypts with; made here if missing
#
# Both must name what the service's archive_command names. Anything that would make every
# archive_command fail (no openssl, an archive or key the postgres user cannot use) stops the
# container here, loudly, instead of leaving PostgreSQL to pile up WAL in pg_wal.
set -euo pipefail

: "${BACKUP_DIR:?BACKUP_DIR must name the backups volume}"
: "${BACKUP_ENCRYPTION_KEY_FILE:?BACKUP_ENCRYPTION_KEY_FILE must name the backup key}"
KEY="$BACKUP_ENCRYPTION_KEY_FILE"

# The repository's scripts/, mounted at /opt/checkout/scripts beside this file's folder.
# shellcheck source=scripts/backup/lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/scripts/backup/lib.sh"

command -v openssl >/dev/null \
  || backup_die "openssl is not in this image: archive-wal.sh could not encrypt the WAL"

as_postgres=()
if [ "$(id -u)" -eq 0 ]; then
  # As backup.sh does when run as root: the archive is the postgres user's.
  for dir in "$BACKUP_DIR" "$BACKUP_DIR/base" "$BACKUP_DIR/wal"; do
    mkdir -p "$dir"
    chown postgres:postgres "$dir"
    chmod 700 "$dir"
  done
  backup_ensure_key "$KEY"
  chown postgres:postgres "$KEY" 2>/dev/null || backup_say "could not give $KEY to the postgres user"
  as_postgres=(runuser -u postgres --)
else
  mkdir -p "$BACKUP_DIR/wal"
  backup_ensure_key "$KEY"
fi

"${as_postgres[@]}" test -w "$BACKUP_DIR/wal" \
  || backup_die "the postgres user cannot write to the WAL archive $BACKUP_DIR/wal"
"${as_postgres[@]}" test -r "$KEY" \
  || backup_die "the postgres user cannot read the backup key $KEY"
backup_say "WAL archive: $BACKUP_DIR/wal (key $KEY)"

exec docker-entrypoint.sh "$@"
