#!/usr/bin/env bash
# promtool for the monitoring tests (`make test-component`): Debian's `prometheus` package, which
# checks and unit-tests monitoring/alerts.yml (`promtool check rules`, `promtool test rules`).
# Idempotent: nothing happens when promtool is on the PATH. Only the tool is wanted: the
# Prometheus daemon the package brings is neither started by the install nor enabled at boot.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOGS="${CHECKOUT_LOCAL_DIR:-$ROOT/.local}/logs"

say() { printf '\033[1m[promtool]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[31m[promtool] error:\033[0m %s\n' "$*" >&2; exit 1; }

command -v promtool >/dev/null && exit 0

command -v apt-get >/dev/null \
  || die "promtool is missing and apt-get is not available: install Prometheus's promtool by hand"
mkdir -p "$LOGS"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

# The package's maintainer scripts start the daemon through invoke-rc.d, which asks policy-rc.d
# first: while installing, a policy that refuses every start (unless the machine has its own).
POLICY=/usr/sbin/policy-rc.d
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\n# installing promtool (crypto-checkout scripts/promtool.sh): start nothing\nexit 101\n' \
    | $sudo tee "$POLICY" >/dev/null
  $sudo chmod 755 "$POLICY"
  remove_policy() { $sudo rm -f "$POLICY"; }
  trap remove_policy EXIT
fi

say "apt-get update"
$sudo apt-get update -qq >"$LOGS/apt-promtool.log" 2>&1 \
  || die "apt-get update failed (see $LOGS/apt-promtool.log)"
say "installing Debian's prometheus package for promtool (the daemon stays off)"
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus \
  >>"$LOGS/apt-promtool.log" 2>&1 || die "apt-get install prometheus failed (see $LOGS/apt-promtool.log)"

# Off at boot, under whichever init system, and stopped if a machine's own policy let it start.
if [ -d /run/systemd/system ]; then
  $sudo systemctl disable --now prometheus.service >/dev/null 2>&1 || true
else
  command -v deb-systemd-helper >/dev/null \
    && $sudo deb-systemd-helper disable prometheus.service >/dev/null 2>&1 || true
  if [ -x /etc/init.d/prometheus ]; then
    $sudo /etc/init.d/prometheus stop >/dev/null 2>&1 || true
    command -v update-rc.d >/dev/null && $sudo update-rc.d prometheus disable >/dev/null 2>&1 || true
  fi
fi

command -v promtool >/dev/null || die "the prometheus package is installed but promtool is not on the PATH"
say "$(promtool --version 2>&1 | head -n 1)"
