#!/usr/bin/env bash
# tests/support/ldap/start_slapd.sh — runs a real OpenLDAP slapd for the LDAP source's tests.
#
# Usage: start_slapd.sh DIR LDAP_PORT LDAPS_PORT
#   DIR         a private directory the caller owns, holding data.ldif: the entries under
#               dc=example,dc=test (the base entry and ou=people are created here).
#   LDAP_PORT   ldap:// on 127.0.0.1 (StartTLS offered), LDAPS_PORT ldaps:// on 127.0.0.1;
#               free loopback ports the caller picked (it retries on a collision: slapd
#               exits when it cannot bind).
# Creates (once) in DIR/tls: ca.crt (a throw-away CA), server.crt/.key (for 127.0.0.1 and
# localhost) and other-ca.crt (an unrelated CA, for the verification-failure tests).
# Writes DIR/slapd.conf (schemas core, cosine, inetorgperson; mdb in DIR/db; anonymous read;
# rootdn cn=admin,dc=example,dc=test with password "secret" for the bind tests), loads
# data.ldif with slapadd, then execs slapd in the foreground (-d 0), so the caller's child PID
# is slapd's: SIGTERM stops it. slapd writes DIR/slapd.pid once it listens.
# Everything stays inside DIR. Listens on 127.0.0.1 only.
set -euo pipefail
dir=${1:?usage: start_slapd.sh DIR LDAP_PORT LDAPS_PORT}
port=${2:?usage: start_slapd.sh DIR LDAP_PORT LDAPS_PORT}
tls_port=${3:?usage: start_slapd.sh DIR LDAP_PORT LDAPS_PORT}
dir=$(cd "$dir" && pwd)
slapd_bin=$(command -v slapd || true)
[[ -z $slapd_bin && -x /usr/sbin/slapd ]] && slapd_bin=/usr/sbin/slapd
if [[ -z $slapd_bin ]]; then
  echo "start_slapd.sh: slapd not installed (scripts/deps.sh installs slapd and ldap-utils)" >&2
  exit 127
fi
slapadd_bin=$(dirname "$slapd_bin")/slapadd
mkdir -p "$dir/tls"

"$(dirname "$0")/../tls_ca.sh" "$dir/tls" "sealmilter LDAP test CA"

cat >"$dir/slapd.conf" <<CONF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile $dir/slapd.pid
argsfile $dir/slapd.args
TLSCACertificateFile $dir/tls/ca.crt
TLSCertificateFile $dir/tls/server.crt
TLSCertificateKeyFile $dir/tls/server.key
sizelimit 500
database mdb
maxsize 16777216
suffix "dc=example,dc=test"
rootdn "cn=admin,dc=example,dc=test"
rootpw secret
directory $dir/db
index mail eq
access to * by * read
CONF

if [[ ! -e $dir/db/data.mdb ]]; then
  mkdir -p "$dir/db"
  { cat <<LDIF
dn: dc=example,dc=test
objectClass: dcObject
objectClass: organization
dc: example
o: sealmilter LDAP test

dn: ou=people,dc=example,dc=test
objectClass: organizationalUnit
ou: people

LDIF
    cat "$dir/data.ldif"
  } >"$dir/all.ldif"
  "$slapadd_bin" -q -f "$dir/slapd.conf" -l "$dir/all.ldif" >"$dir/slapadd.log" 2>&1 || {
    cat "$dir/slapadd.log" >&2
    exit 1
  }
fi
rm -f "$dir/slapd.pid"

# Should the test die without stopping us, do not outlive it: a watchdog stops slapd (which
# will have this shell's PID after the exec) once the test process is gone.
test_pid=$PPID
self=$$
( while kill -0 "$test_pid" 2>/dev/null && kill -0 "$self" 2>/dev/null; do sleep 1; done
  if kill -0 "$self" 2>/dev/null && [[ $(cat /proc/$self/comm 2>/dev/null) == slapd ]]; then kill -TERM "$self"; fi
) </dev/null >/dev/null 2>&1 &

exec "$slapd_bin" -d 0 -f "$dir/slapd.conf" -h "ldap://127.0.0.1:$port/ ldaps://127.0.0.1:$tls_port/"
