#!/usr/bin/env bash
# bench/ldap.sh — LDAP certificate lookups beside the directory source, in one run.
#
#   bench/ldap.sh [BUILD_DIR]     (default: <repo>/build)
#
# 1. builds bench_ldap; 2. makes a test CA and 50 EC P-256 recipient certificates;
# 3. serves them twice on loopback: nginx with TLS + HTTP/2 (tests/support/http/start_nginx.sh,
#    static JSON answers, no added delay) as the directory, and a real slapd over ldaps://
#    (tests/support/ldap/start_slapd.sh, userCertificate;binary) as the LDAP source;
# 4. bench_ldap, on the stacks `sealmilter run` builds (cache on, answers validated): cold (cache
#    purged before each run) 1 / 50 per RCPT / 50 in one call for each source, 11 runs each,
#    interleaved; warm cache hits; LDAP searches without the cache on the kept connection;
# 5. writes the "ldap" section of BENCHMARKS.md (bench/sections.py); the other sections stay.
# Starts nginx and slapd itself and stops them (by PID) on exit. About 6 minutes on the shared
# 2-CPU machine under load 15 (mostly waiting for the CPU); less on an idle one.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:-$ROOT/build}
case $BUILD in /*) ;; *) BUILD=$PWD/$BUILD ;; esac
COMMAND="bench/ldap.sh${1:+ $1}"
START=$SECONDS
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
die() { echo "bench/ldap.sh: $*" >&2; exit 1; }
for tool in cmake openssl python3; do command -v "$tool" >/dev/null || die "missing $tool"; done
cmake -S "$ROOT" -B "$BUILD" -DSEALMILTER_BENCH=ON >/dev/null || die "cmake configure failed"
cmake --build "$BUILD" -j2 --target bench_ldap >/dev/null || die "build failed"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/sealmilter-bench-ldap.XXXXXX")
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf -- "$TMP"; }
trap cleanup EXIT
mkdir -p "$TMP/pki" "$TMP/nginx/www/json" "$TMP/slapd" "$TMP/cache"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$TMP/pki/ca.key" \
  -out "$TMP/pki/ca.pem" -days 2 -subj "/CN=bench recipient CA" -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null || die "CA"
: >"$TMP/addresses"
: >"$TMP/slapd/data.ldif"
for i in $(seq 1 50); do
  a="rcpt$i@partner.example"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$TMP/pki/k$i.pem" \
    -out "$TMP/pki/r$i.csr" -subj "/CN=rcpt$i" 2>/dev/null
  printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,keyAgreement\nextendedKeyUsage=emailProtection\nsubjectAltName=email:%s\n' "$a" >"$TMP/pki/e$i"
  openssl x509 -req -in "$TMP/pki/r$i.csr" -CA "$TMP/pki/ca.pem" -CAkey "$TMP/pki/ca.key" -set_serial "$((1000 + i))" \
    -days 2 -extfile "$TMP/pki/e$i" -out "$TMP/pki/c$i.pem" 2>/dev/null || die "certificate $i"
  python3 -c 'import json,sys; print(json.dumps({"certificates":[{"pem":open(sys.argv[1]).read()}]}))' \
    "$TMP/pki/c$i.pem" >"$TMP/nginx/www/json/$a"
  printf 'dn: cn=rcpt%s,ou=people,dc=example,dc=test\nobjectClass: inetOrgPerson\ncn: rcpt%s\nsn: rcpt%s\nmail: %s\nuserCertificate;binary:: %s\n\n' \
    "$i" "$i" "$i" "$a" "$(openssl x509 -in "$TMP/pki/c$i.pem" -outform DER | base64 -w0)" >>"$TMP/slapd/data.ldif"
  echo "$a" >>"$TMP/addresses"
done

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_pid_file() {  # PID_FILE PID WHAT: the server is ours once its pid file names our child
  for _ in $(seq 1 200); do
    [[ -s $1 && $(cat "$1") == "$2" ]] && return 0
    kill -0 "$2" 2>/dev/null || die "$3 exited"
    sleep 0.05
  done
  die "$3 did not start"
}
http_port=$(free_port)
bash "$ROOT/tests/support/http/start_nginx.sh" "$TMP/nginx" "$http_port" >/dev/null 2>"$TMP/nginx.err" &
pids+=($!)
wait_pid_file "$TMP/nginx/nginx.pid" "$!" nginx
ldap_port=$(free_port)
ldaps_port=$(free_port)
bash "$ROOT/tests/support/ldap/start_slapd.sh" "$TMP/slapd" "$ldap_port" "$ldaps_port" >/dev/null 2>"$TMP/slapd.err" &
pids+=($!)
wait_pid_file "$TMP/slapd/slapd.pid" "$!" slapd

cat >"$TMP/directory.conf" <<CONF
[lookup]
order = cache,directory
trust_anchors = $TMP/pki/ca.pem
[directory]
url = https://127.0.0.1:$http_port/json/{email}
ca_file = $TMP/nginx/tls/ca.crt
CONF
cat >"$TMP/ldap.conf" <<CONF
[lookup]
order = cache,ldap
trust_anchors = $TMP/pki/ca.pem
[ldap]
uri = ldaps://127.0.0.1:$ldaps_port
base = ou=people,dc=example,dc=test
ca_file = $TMP/slapd/tls/ca.crt
CONF
"$BUILD/bench_ldap" "$TMP/directory.conf" "$TMP/ldap.conf" "$TMP/addresses" "$TMP/cache" 5000 >"$TMP/results" \
  || die "bench_ldap failed"
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
get() { v=$(sed -n "s/^$1=//p" "$TMP/results"); [[ -n $v ]] || die "bench_ldap did not report $1"; echo "$v"; }
f() { python3 -c "print(f'{$1:,.${2:-2}f}')"; }
r() { python3 -c "print(f'{$(get "ldap_$1") / $(get "dir_$1"):.2f}')"; }  # LDAP / directory
row() {  # KEY LABEL
  echo "| $2 | $(f "$(get "dir_$1_ms_p50")") ms ($(f "$(get "dir_$1_ms_min")")..$(f "$(get "dir_$1_ms_max")")) | $(f "$(get "ldap_$1_ms_p50")") ms ($(f "$(get "ldap_$1_ms_min")")..$(f "$(get "ldap_$1_ms_max")")) | $(r "$1_ms_p50")x |"
}
n=$(get addresses)
cat >"$TMP/section.md" <<MD
## LDAP certificate lookup beside the directory

Generated by \`bench/ldap.sh\`; every figure was measured in this run, through the lookup stacks
\`sealmilter run\` builds (\`cli::build_lookup\`, SQLite cache on, every answer validated): the
directory source (\`lookup.order = cache,directory\`, the baseline) and the LDAP source
(\`lookup.order = cache,ldap\`). Both serve the same $n EC P-256 recipients from loopback with no
added latency, so the figures compare the sources' own costs (protocol, TLS, parsing), not a
network. *Cold* = the cache is empty (purged before each run); both sources already hold an open
connection, as in a running daemon. Medians of 11 interleaved runs (min..max).

| | |
|---|---|
| Command | \`$COMMAND\` (from the repository root) |
| Date | $(date -u +%Y-%m-%dT%H:%M:%SZ) |
| Machine | $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(uname -sr) |
| Load average (1/5/15 min) | before $LOAD_BEFORE, after $LOAD_AFTER (a shared machine: other work ran beside) |
| Directory | nginx, TLS + HTTP/2, static JSON answers |
| LDAP | slapd $(slapd -VV 2>&1 | sed -n 's/.*slapd \([0-9.]*\).*/\1/p' | head -1) (mdb), ldaps:// with a test CA, \`userCertificate;binary\`, filter \`(mail=%s)\` (indexed) |
| Source | git $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$([[ -z $(git -C "$ROOT" status --porcelain 2>/dev/null) ]] || echo ' + uncommitted changes') |
| Run time | $((SECONDS - START)) s |

| Case | Directory (baseline) | LDAP | LDAP / directory |
|---|---|---|---|
$(row single "Cold, 1 recipient")
$(row rcpt "Cold, $n recipients, one lookup per RCPT thread (the milter)")
$(row call "Cold, $n recipients in one \`resolve()\` call (the CLI; LDAP: $n concurrent searches on one connection)")
| Warm (cache hit), p50 / p99 | $(f "$(get dir_warm_ms_p50)" 3) / $(f "$(get dir_warm_ms_p99)" 3) ms | $(f "$(get ldap_warm_ms_p50)" 3) / $(f "$(get ldap_warm_ms_p99)" 3) ms | $(r warm_ms_p50)x |

The LDAP source alone (no cache, no validation), one search per call on its kept connection:
p50 $(f "$(get ldap_nocache_ms_p50)" 3) ms, p99 $(f "$(get ldap_nocache_ms_p99)" 3) ms over 5,000 searches, $(get ldap_nocache_connections) connection opened.
MD
python3 "$ROOT/bench/sections.py" "$ROOT/BENCHMARKS.md" ldap "$TMP/section.md" || die "cannot update BENCHMARKS.md"
cat "$TMP/results" >&2
echo "bench/ldap.sh: wrote the ldap section of $ROOT/BENCHMARKS.md in $((SECONDS - START)) s" >&2
