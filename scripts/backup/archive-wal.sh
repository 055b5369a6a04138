#!/usr/bin/env bash
# PostgreSQL's archive_command: one WAL segment (or history/backup file) into the WAL archive,
# compressed and encrypted (scripts/backup/lib.sh).
#
#   archive_command = '.../scripts/backup/archive-wal.sh "%p" "%f" WAL_DIR KEY_FILE'
#
# The file becomes WAL_DIR/<name>.gz.enc, atomically: written to a temporary name, flushed to
# disk, renamed, and the directory flushed, so a crash never leaves a partial file under the
# real name. PostgreSQL retries a segment whose command failed, and may retry one that succeeded
# just before a crash: an archived file with the same content is success, one with different
# content is refused (exit 1; PostgreSQL keeps the segment in pg_wal and keeps retrying, and the
# server log says why).
set -euo pipefail

[ "$#" -eq 4 ] || { echo "usage: $0 WAL_PATH WAL_NAME WAL_DIR KEY_FILE" >&2; exit 2; }
src="$1" name="$2" dir="$3" key="$4"

# shellcheck source=scripts/backup/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
backup_check_key "$key"
[ -d "$dir" ] || backup_die "WAL archive directory $dir does not exist"

target="$dir/$name.gz.enc"
if [ -e "$target" ]; then
  if backup_decrypt "$key" <"$target" | gzip -dc | cmp -s - "$src"; then
    exit 0 # archived already (a retry after a crash): nothing to do
  fi
  backup_die "$target exists with other content; refusing to overwrite it"
fi

tmp="$dir/.$name.$$.tmp"
trap 'rm -f "$tmp"' EXIT
gzip -1 -c "$src" | backup_encrypt "$key" >"$tmp"
sync "$tmp"
mv "$tmp" "$target"
sync "$dir"
trap - EXIT
