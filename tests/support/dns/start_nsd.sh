#!/usr/bin/env bash
# tests/support/dns/start_nsd.sh — a real DNSSEC-signed zone on loopback for the SMIMEA tests.
#
# Usage: start_nsd.sh PREFIX PORT [ZONE]
#   PREFIX  a private directory the test owns, holding
#             records/ZONE              resource records of the signed zone ZONE (default
#                                       dane.example)
#             records/insecure.ZONE     records of an unsigned child zone (delegated from
#                                       ZONE without DS: answers are insecure)
#             tamper                    optional: owner names whose RRSIG is corrupted after
#                                       signing (answers for them are bogus)
#   PORT    a free loopback port (UDP and TCP; the caller picks it and retries on collision).
# Creates (once) the zone keys (ldns-keygen, ECDSA P-256), signs ZONE with
# ldns-signzone, writes PREFIX/trust_anchor.ds (the KSK's DS, with a comment line) and
# PREFIX/nsd.conf, then execs nsd in the foreground: the caller's child PID is nsd's main
# process (its pid file says so), and SIGTERM stops it with its children.
# Everything nsd writes (pid, log, state) stays inside PREFIX. Listens on 127.0.0.1 only.
set -euo pipefail
prefix=${1:?usage: start_nsd.sh PREFIX PORT}
port=${2:?usage: start_nsd.sh PREFIX PORT}
prefix=$(cd "$prefix" && pwd)
for tool in nsd ldns-keygen ldns-signzone; do
  if ! command -v "$tool" >/dev/null && [[ ! -x /usr/sbin/$tool ]]; then
    echo "start_nsd.sh: $tool not installed (scripts/deps.sh installs nsd and ldnsutils)" >&2
    exit 127
  fi
done
nsd_bin=$(command -v nsd || echo /usr/sbin/nsd)
zone=${3:-dane.example}
child=insecure.$zone
cd "$prefix"
mkdir -p keys

if [[ ! -s $zone.zone.signed ]]; then
  cat >"$zone.zone" <<ZONE
\$ORIGIN $zone.
\$TTL 300
@ IN SOA ns.$zone. admin.$zone. 1 3600 600 86400 300
@ IN NS ns.$zone.
ns IN A 127.0.0.1
; the child zone is delegated without a DS record: it is insecure
insecure IN NS ns.$zone.
ZONE
  cat records/$zone >>"$zone.zone"
  (cd keys && ksk=$(ldns-keygen -k -a ECDSAP256SHA256 $zone) && zsk=$(ldns-keygen -a ECDSAP256SHA256 $zone) &&
    echo "$ksk" >ksk.name && echo "$zsk" >zsk.name)
  ksk=keys/$(cat keys/ksk.name)
  zsk=keys/$(cat keys/zsk.name)
  ldns-signzone -f "$zone.zone.signed" "$zone.zone" "$ksk" "$zsk"
  {
    echo "; trust anchor of the test zone $zone (the KSK's DS) — comments are allowed"
    echo "# this line is a comment too"
    cat "$ksk.ds"
  } >trust_anchor.ds
  if [[ -s tamper ]]; then
    # Flip one base64 digit in the middle of each named owner's SMIMEA signature.
    while read -r owner; do
      [[ -z $owner ]] && continue
      awk -v o="$owner" '
        tolower($1) == tolower(o) && $4 == "RRSIG" && ($5 == "TYPE53" || $5 == "SMIMEA") {
          s = $NF; c = substr(s, 20, 1); r = (c == "A") ? "B" : "A"
          $NF = substr(s, 1, 19) r substr(s, 21)
        }
        { print }' "$zone.zone.signed" >"$zone.zone.tmp"
      mv "$zone.zone.tmp" "$zone.zone.signed"
    done <tamper
  fi
  cat >"$child.zone" <<ZONE
\$ORIGIN $child.
\$TTL 300
@ IN SOA ns.$zone. admin.$zone. 1 3600 600 86400 300
@ IN NS ns.$zone.
ZONE
  cat records/$child >>"$child.zone"
fi

cat >nsd.conf <<CONF
server:
  ip-address: 127.0.0.1
  port: $port
  username: ""
  chroot: ""
  zonesdir: "$prefix"
  pidfile: "$prefix/nsd.pid"
  logfile: "$prefix/nsd.log"
  database: ""
  zonelistfile: "$prefix/zone.list"
  xfrdfile: "$prefix/xfrd.state"
  xfrdir: "$prefix"
  server-count: 1
  verbosity: 1
remote-control:
  control-enable: no
zone:
  name: $zone
  zonefile: $zone.zone.signed
zone:
  name: $child
  zonefile: $child.zone
CONF
rm -f nsd.pid
exec "$nsd_bin" -d -c "$prefix/nsd.conf"
