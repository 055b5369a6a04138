#!/bin/sh
# A self-signed TLS certificate for the local load balancer (docs/load-balancer.md): localhost,
# 127.0.0.1 and ::1, an EC P-256 key, valid 397 days.
#
#   docker/nginx/local-certificate.sh [CERT KEY]     (default: $LB_CERT and $LB_KEY)
#
# Run by scripts/platform.sh and tests/support/nginx.py, and in docker-compose.yml by the
# official nginx image's entrypoint (mounted as /docker-entrypoint.d/05-checkout-certificate.sh).
# Idempotent: an existing certificate is kept; one this script made is renewed when it has less
# than 30 days left. A certificate it did not make (a real one) is never touched.
set -eu

cert="${1:-${LB_CERT:?LB_CERT or an argument: where the certificate goes}}"
key="${2:-${LB_KEY:?LB_KEY or an argument: where the key goes}}"
marker="crypto-checkout local development"

if [ -s "$cert" ] && [ -s "$key" ]; then
  if ! openssl x509 -in "$cert" -noout -subject 2>/dev/null | grep -q "$marker"; then
    exit 0 # not ours: a real certificate, given by configuration
  fi
  if openssl x509 -in "$cert" -noout -checkend $((30 * 86400)) >/dev/null 2>&1; then
    exit 0
  fi
fi

command -v openssl >/dev/null 2>&1 || {
  echo "local-certificate.sh: openssl is needed to make $cert (scripts/infra.sh up nginx installs it)" >&2
  exit 1
}
mkdir -p "$(dirname "$cert")" "$(dirname "$key")"
config="$(mktemp)"
trap 'rm -f "$config"' EXIT
# A leaf certificate that is its own issuer: clients trust exactly this file (curl --cacert,
# ssl.create_default_context(cafile=…)), nothing else it could sign.
cat >"$config" <<EOF
[req]
distinguished_name = subject
x509_extensions = leaf
prompt = no
[subject]
O = $marker
CN = localhost
[leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
umask 077
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 397 \
  -config "$config" -keyout "$key.new" -out "$cert.new" 2>/dev/null \
  || { echo "local-certificate.sh: openssl could not make $cert" >&2; exit 1; }
chmod 644 "$cert.new"
mv "$key.new" "$key"
mv "$cert.new" "$cert"
echo "local-certificate.sh: made a self-signed certificate for localhost, 127.0.0.1, ::1: $cert" >&2
