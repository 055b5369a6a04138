# shellcheck shell=bash
# Shared by scripts/backup.sh, scripts/restore.sh and the archive/restore commands of PostgreSQL
# (archive-wal.sh, restore-wal.sh): how backups are encrypted at rest, and where the tools are.
#
# Encryption: `openssl enc` with AES-256-CBC, its key derived from the key file's first line by
# PBKDF2-SHA256 with a random salt per file (10,000 rounds: the key is 48 random bytes, so
# stretching adds nothing). The key file is made once, mode 600. Every file is compressed before
# it is encrypted (gzip, or zstd for base backups when installed) and both decompressors check a
# checksum of what they wrote: a corrupted or truncated file fails to decrypt or to decompress,
# it is never restored silently. CBC has no authentication of its own: if a tamperer is part of
# the threat model, keep the archive where files cannot be rewritten (object lock, append-only).

BACKUP_CIPHER=(-aes-256-cbc -pbkdf2 -iter 10000 -md sha256)

backup_die() { printf '\033[31m[backup] error:\033[0m %s\n' "$*" >&2; exit 1; }
backup_say() { printf '\033[1m[backup]\033[0m %s\n' "$*" >&2; }

backup_encrypt() { # key_file: stdin → stdout
  openssl enc -e -salt "${BACKUP_CIPHER[@]}" -pass "file:$1"
}

backup_decrypt() { # key_file: stdin → stdout
  openssl enc -d "${BACKUP_CIPHER[@]}" -pass "file:$1"
}

backup_check_key() { # key_file → dies unless it is a readable, non-empty key
  if [ ! -r "$1" ] || [ ! -s "$1" ]; then
    backup_die "no readable encryption key at $1 (BACKUP_ENCRYPTION_KEY_FILE)"
  fi
}

backup_ensure_key() { # key_file → makes a random key (mode 600) unless one is there
  local key="$1"
  [ -s "$key" ] && return 0
  command -v openssl >/dev/null || backup_die "openssl is needed to make the backup key"
  mkdir -p "$(dirname "$key")"
  (umask 077 && openssl rand -base64 48 >"$key.tmp.$$" && mv "$key.tmp.$$" "$key")
  backup_say "made a new backup encryption key: $key (keep a copy away from the backups)"
}

pg_tool() { # name → the PostgreSQL client tool of the newest installed major version
  local dir
  dir="$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
  if [ -n "$dir" ] && [ -x "$dir/$1" ]; then
    echo "$dir/$1"
  elif command -v "$1" >/dev/null; then
    command -v "$1"
  else
    backup_die "$1 not found (install the PostgreSQL client and server packages)"
  fi
}

json_string() { # text → a JSON string literal
  local s="$1"
  s="${s//\\/\\\\}"
  s="${s//\"/\\\"}"
  s="${s//$'\n'/\\n}"
  printf '"%s"' "$s"
}

json_field() { # file key → the value of "key" in backup.json (one key per line, as backup.sh writes it)
  sed -n "s/^[[:space:]]*\"$2\":[[:space:]]*//p" "$1" | head -n 1 \
    | sed -e 's/,[[:space:]]*$//' -e 's/^"\(.*\)"$/\1/'
}
