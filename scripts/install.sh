#!/usr/bin/env bash
# Create .venv with Python 3.11+ and install crypto-checkout with its test tools. Idempotent.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

say() { printf '\033[1m[install]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[31m[install] error:\033[0m %s\n' "$*" >&2; exit 1; }

PYTHON="${PYTHON_FOR_VENV:-python3}"
command -v "$PYTHON" >/dev/null || die "python3 not found: install Python 3.11 or newer"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || die "Python 3.11+ is required, $PYTHON is $("$PYTHON" --version 2>&1)"

if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $("$PYTHON" --version)"
  if ! "$PYTHON" -m venv .venv 2>/dev/null; then
    # Debian splits venv/ensurepip into its own package.
    say "python3 -m venv failed; installing Debian's python3-venv"
    sudo_cmd=""; [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq && $sudo_cmd apt-get install -y -qq python3-venv >/dev/null
    rm -rf .venv
    "$PYTHON" -m venv .venv
  fi
fi
say "installing crypto-checkout and its dependencies into .venv"
.venv/bin/python -m pip install -q -e '.[test]'
