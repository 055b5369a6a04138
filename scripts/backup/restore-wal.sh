#!/usr/bin/env bash
# PostgreSQL's restore_command during a restore (scripts/restore.sh): one file from the WAL
# archive, decrypted and decompressed to where PostgreSQL asks.
#
#   restore_command = '.../scripts/backup/restore-wal.sh "%f" "%p" WAL_DIR KEY_FILE'
#
# A file that is not in the archive is exit 1: the normal end of the archive (PostgreSQL also
# asks for files that never existed, such as the next timeline's history). A file that is there
# but does not decrypt or decompress (corrupted, truncated, another key) stops the recovery with
# an error (exit status above 125 makes PostgreSQL abort), instead of letting it end early at
# that point and promote a database that silently misses everything after it.
set -euo pipefail

[ "$#" -eq 4 ] || { echo "usage: $0 WAL_NAME TARGET_PATH WAL_DIR KEY_FILE" >&2; exit 2; }
name="$1" dest="$2" dir="$3" key="$4"

# shellcheck source=scripts/backup/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

src="$dir/$name.gz.enc"
[ -f "$src" ] || exit 1
if [ ! -r "$key" ] || [ ! -s "$key" ]; then
  echo "restore-wal: no readable encryption key at $key; stopping recovery" >&2
  exit 126
fi

tmp="$dest.restoring"
if ! backup_decrypt "$key" <"$src" | gzip -dc >"$tmp"; then
  rm -f "$tmp"
  echo "restore-wal: $src does not decrypt or decompress (corrupted, or another key); stopping recovery" >&2
  exit 126
fi
mv "$tmp" "$dest"
