#!/usr/bin/env bash
# setup.sh — the README's first command: installs the dependencies (Debian 12 packages),
# builds sealmilter, and runs the gateway on its embedded defaults. Until the milter daemon
# lands, "the gateway" is the offline transform: a throw-away recipient certificate is made,
# a sample message is encrypted exactly as the milter will, then decrypted again.
set -euo pipefail
cd "$(dirname "$0")"
scripts/deps.sh
scripts/build.sh build -DCMAKE_BUILD_TYPE=Release -DSEALMILTER_TESTS=OFF -DSEALMILTER_BENCH=OFF
./build/sealmilter --version

demo=$(mktemp -d)
trap 'rm -rf "$demo"' EXIT
openssl req -x509 -newkey rsa:2048 -nodes -days 7 -subj "/CN=Demo Recipient" \
  -addext "subjectAltName=email:demo@partner.example" -addext "keyUsage=critical,keyEncipherment" \
  -addext "extendedKeyUsage=emailProtection" -keyout "$demo/key.pem" -out "$demo/cert.pem" 2>/dev/null
./build/sealmilter encrypt --to demo@partner.example --cert "$demo/cert.pem" \
  < tests/data/messages/01-plain-ascii.eml > "$demo/encrypted.eml"
echo "--- encrypted (first lines) ---"
head -n 14 "$demo/encrypted.eml"
./build/sealmilter decrypt --key "$demo/key.pem" < "$demo/encrypted.eml" > "$demo/decrypted.eml"
echo "--- decrypted again with the recipient's key: $(wc -c < "$demo/decrypted.eml") bytes ---"
echo "sealmilter is built: ./build/sealmilter --help"
