#!/usr/bin/env bash
# tests/support/tls_ca.sh — the throw-away TLS material of the test servers (nginx, slapd, ...).
#
# Usage: tls_ca.sh DIR CA_NAME [client]
#   Creates (once: nothing is done when DIR/server.crt exists) in DIR:
#     ca.crt/.key        a CA named CA_NAME (EC P-256, valid 2 days)
#     other-ca.crt/.key  an unrelated CA, for the wrong-anchor tests
#     server.crt/.key    a server certificate for IP 127.0.0.1 and DNS localhost, from ca
#     client.crt/.key    with "client": a TLS client certificate from ca
set -euo pipefail
dir=${1:?usage: tls_ca.sh DIR CA_NAME [client]}
ca_name=${2:?usage: tls_ca.sh DIR CA_NAME [client]}
client=${3:-}
[[ -s $dir/server.crt ]] && exit 0
mkdir -p "$dir"

make_ca() {  # NAME CN
  cat >"$dir/$1.cnf" <<CNF
[req]
distinguished_name = dn
x509_extensions = v3_ca
prompt = no
[dn]
CN = $2
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
CNF
  openssl req -x509 -config "$dir/$1.cnf" -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -nodes -keyout "$dir/$1.key" -out "$dir/$1.crt" -days 2 2>/dev/null
}

issue() {  # NAME CN EXTENDED_KEY_USAGE [SUBJECT_ALT_NAME]
  {
    echo "basicConstraints = CA:FALSE"
    echo "keyUsage = critical,digitalSignature"
    echo "extendedKeyUsage = $3"
    [[ -n ${4:-} ]] && echo "subjectAltName = $4"
  } >"$dir/$1.ext"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$2" \
    -keyout "$dir/$1.key" -out "$dir/$1.csr" 2>/dev/null
  openssl x509 -req -in "$dir/$1.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
    -CAcreateserial -days 2 -extfile "$dir/$1.ext" -out "$dir/$1.crt" 2>/dev/null
}

make_ca ca "$ca_name"
make_ca other-ca "unrelated $ca_name"
[[ $client == client ]] && issue client "sealmilter test client" clientAuth
# The server certificate last: its presence says the whole set is there.
issue server localhost serverAuth "IP:127.0.0.1,DNS:localhost"
