#!/usr/bin/env bash
# bench/lookup.sh — certificate lookup latency, cold (directory with added latency) and warm
# (SQLite cache), through the lookup stack `sealmilter run` builds (cli::build_lookup).
#
#   bench/lookup.sh [BUILD_DIR] [DELAY_MS]     (defaults: <repo>/build, 50)
#
# 1. builds bench_lookup; 2. makes a test CA and 50 RSA-2048 recipient certificates;
# 3. the directory: nginx with TLS and HTTP/2 (tests/support/http/start_nginx.sh) proxying
#    /slow/ to bench/slow_directory.py, which answers each request after DELAY_MS;
# 4. bench_lookup, on the stack `sealmilter run` builds (cache on, answers validated):
#    cold (cache purged before each run): 1 recipient (the baseline), 50 recipients as the
#    milter looks them up (one lookup per RCPT, all at once) and 50 in one resolve() call (the
#    CLI), 11 runs of each, interleaved; 50 `require` recipients (one after another), once;
#    warm: 20,000 lookups answered by the cache (1 thread, then 2);
# 5. writes the "lookup" section of BENCHMARKS.md (bench/sections.py); the other sections stay.
# Loopback only; starts nginx and the backend itself and stops them (by PID) on exit.
# 6. the DNS SMIMEA source beside it: NSD serving the same certificates as SMIMEA records in
#    a zone signed with ldns-signzone (tests/support/dns/start_nsd.sh); cold and warm dns
#    lookups, and the cold 50-recipient message with cache,directory,dns configured.
# Needs: cmake, a C++20 compiler, nginx, openssl, python3, nsd, ldnsutils. About 40 seconds.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:-$ROOT/build}
DELAY=${2:-50}
case $BUILD in /*) ;; *) BUILD=$PWD/$BUILD ;; esac
COMMAND="bench/lookup.sh${1:+ $1}${2:+ $2}"
START=$SECONDS
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
die() { echo "bench/lookup.sh: $*" >&2; exit 1; }
for tool in cmake openssl python3; do command -v "$tool" >/dev/null || die "missing $tool"; done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[[ -x $NGINX ]] || die "missing nginx"
cmake -S "$ROOT" -B "$BUILD" -DSEALMILTER_BENCH=ON >/dev/null || die "cmake configure failed"
cmake --build "$BUILD" -j"$(nproc)" --target bench_lookup >/dev/null || die "build failed"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/sealmilter-bench-lookup.XXXXXX")
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf -- "$TMP"; }
trap cleanup EXIT
source "$ROOT/bench/common.sh"
make_recipients 50 rsa "$TMP/www"
echo "warmup nobody@partner.example" >>"$TMP/addresses"
# The same 50 certificates as SMIMEA usage 1 records in partner.example., signed with
# ldns-signzone and served by NSD on loopback (tests/support/dns/start_nsd.sh).
mkdir -p "$TMP/nsd/records"
python3 - "$TMP" <<'PY' || die "SMIMEA records"
import hashlib, subprocess, sys
tmp = sys.argv[1]
with open(f"{tmp}/nsd/records/partner.example", "w") as out:
    for i in range(1, 51):
        der = subprocess.run(["openssl", "x509", "-in", f"{tmp}/pki/c{i}.pem", "-outform", "DER"],
                             capture_output=True, check=True).stdout
        rdata = bytes([1, 0, 0]) + der
        owner = hashlib.sha256(f"rcpt{i}".encode()).hexdigest()[:56]
        out.write(f"{owner}._smimecert 300 IN TYPE53 \\# {len(rdata)} {rdata.hex()}\n")
open(f"{tmp}/nsd/records/insecure.partner.example", "w").close()
PY

start_slow_directory "$DELAY"
port=$(free_port)
start_nginx "$port" "$SLOW_DIRECTORY_PORT"
NGINX_PID=${pids[-1]}  # start_nginx.sh execs nginx: this is the master
dns_port=$(free_port)
bash "$ROOT/tests/support/dns/start_nsd.sh" "$TMP/nsd" "$dns_port" partner.example >/dev/null 2>"$TMP/nsd.err" &
NSD_PID=$!  # start_nsd.sh execs nsd: this is its main process
pids+=("$NSD_PID")
up=0
for _ in $(seq 1 300); do
  if [[ $(cat "$TMP/nsd/nsd.pid" 2>/dev/null) == "$NSD_PID" ]] && grep -q "nsd started" "$TMP/nsd/nsd.log" 2>/dev/null; then
    up=1; break
  fi
  sleep 0.1
done
[[ $up == 1 ]] || die "nsd did not start: $(tail -3 "$TMP/nsd.err")"
DNS_CONF="[dns]
trust_anchor = $TMP/nsd/trust_anchor.ds
forwarders = 127.0.0.1@$dns_port
timeout_ms = 5000"
cat >"$TMP/sealmilter.conf" <<CONF
[lookup]
order = cache,directory
trust_anchors = $TMP/pki/ca.pem
[directory]
url = https://127.0.0.1:$port/slow/{email}
ca_file = $TMP/nginx/tls/ca.crt
timeout_ms = 5000
CONF
cat >"$TMP/dns.conf" <<CONF
[lookup]
order = dns
trust_anchors = $TMP/pki/ca.pem
$DNS_CONF
CONF
cat >"$TMP/multi.conf" <<CONF
[lookup]
order = cache,directory,dns
trust_anchors = $TMP/pki/ca.pem
[directory]
url = https://127.0.0.1:$port/slow/{email}
ca_file = $TMP/nginx/tls/ca.crt
timeout_ms = 5000
$DNS_CONF
CONF
# CPU (clock ticks) of the test directory itself: the backend and nginx's worker.
harness_ticks() {
  local p t=0
  for p in "$SLOW_DIRECTORY_PID" $(pgrep -P "$NGINX_PID" nginx || true); do
    t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo "$t"
}
TICKS_BEFORE=$(harness_ticks)
"$BUILD/bench_lookup" "$TMP/sealmilter.conf" "$TMP/addresses" "$TMP/cache.db" 20000 "$TMP/dns.conf" "$TMP/multi.conf" \
  >"$TMP/results" \
  || die "bench_lookup failed"
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
HARNESS_MS=$(( ($(harness_ticks) - TICKS_BEFORE) * 1000 / $(getconf CLK_TCK) ))
for key in addresses cold_single_ms_p50 cold_rcpt_ms_p50 cold_call_ms_p50 cold_rcpt_first_burst_ms cold_require_ms \
  cold_single_cpu_ms_p50 cold_rcpt_cpu_ms_p50 cold_call_cpu_ms_p50 cold_rcpt_first_burst_cpu_ms \
  warm_iterations warm_ms_p50 warm_ms_p99 warm_per_s_1t warm_per_s_2t \
  dns_cold_single_ms_p50 dns_cold_rcpt_ms_p50 multi_cold_call_ms_p50 dns_warm_ms_p50 dns_warm_ms_p99 dns_warm_per_s_1t; do
  grep -q "^$key=[0-9]" "$TMP/results" || die "bench_lookup did not report $key"
done
get() { sed -n "s/^$1=//p" "$TMP/results"; }
f() { python3 -c "print(f'{$1:,.${2:-1}f}')"; }
x() { python3 -c "print(f'{$1 / $(get cold_single_ms_p50):.2f}')"; }  # ratio to one recipient
range() { echo "median of $(get "$1_runs"); $(f "$(get "$1_ms_min")")..$(f "$(get "$1_ms_max")")"; }
ratio=$(x "$(get cold_rcpt_ms_p50)")
verdict=$(python3 -c "print('met' if $ratio < 2 else 'missed')")
# The TLS connections nginx saw for the directory requests (its log has the connection number).
requests=$(grep -c '"GET /slow/' "$TMP/nginx/logs/access.log" || true)
connections=$(grep '"GET /slow/' "$TMP/nginx/logs/access.log" | cut -d' ' -f1 | sort -u | wc -l)
n=$(get addresses)
cat >"$TMP/section.md" <<MD
## Certificate lookup

Generated by \`bench/lookup.sh\`; every figure below was measured in this run, through the lookup
stack \`sealmilter run\` builds (\`cli::build_lookup\`, \`lookup.order = cache,directory\`): SQLite
cache on, every answer validated (chain to the test CA, key usage, address in the SAN). *Cold* =
the cache is empty (purged before each run), so a lookup is what the daemon does for a new
recipient: cache miss, directory request, validation, cache write. Re-run the command to refresh
this section.

| | |
|---|---|
| Command | \`$COMMAND\` (from the repository root) |
| Date | $(date -u +%Y-%m-%dT%H:%M:%SZ) |
| Machine | $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(uname -sr) |
| Load average (1/5/15 min) | before $LOAD_BEFORE, after $LOAD_AFTER |
| Directory | nginx $("$NGINX" -v 2>&1 | sed 's|.*nginx/||'), TLS + HTTP/2 on loopback, proxying to a backend that answers each request after ${DELAY} ms (\`bench/slow_directory.py\`); $n RSA-2048 recipients under a test CA, JSON answers |
| Source | git $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$([[ -z $(git -C "$ROOT" status --porcelain 2>/dev/null) ]] || echo ' + uncommitted changes') |
| Run time | $((SECONDS - START)) s (most of it making the $n RSA keys) |

### Target

| Target | Required | Measured | Ratio | Verdict |
|---|---|---|---|---|
| Cold lookup of a $n-recipient message vs a 1-recipient message, directory ${DELAY} ms away, as the milter runs it (one lookup per RCPT on its own thread, all in flight at once: \`milter/transaction.cpp\`) | < 2x | $n recipients: $(f "$(get cold_rcpt_ms_p50)") ms ($(range cold_rcpt)) vs 1 recipient: $(f "$(get cold_single_ms_p50)") ms ($(range cold_single)) | ${ratio}x | **${verdict}** |

### All cold cases (same run, same directory, interleaved)

CPU = user + system time of the process doing the lookups (the lookup stack, all its threads),
median per run; nginx and the directory backend share the same cores (their total is below).

| Case | Wall time | vs 1 recipient | CPU |
|---|---|---|---|
| 1 recipient (the baseline) | $(f "$(get cold_single_ms_p50)") ms ($(range cold_single)) | 1.00x | $(f "$(get cold_single_cpu_ms_p50)") ms |
| $n recipients as the milter runs them (the target row) | $(f "$(get cold_rcpt_ms_p50)") ms ($(range cold_rcpt)) | ${ratio}x | $(f "$(get cold_rcpt_cpu_ms_p50)") ms |
| $n recipients in one \`resolve()\` call (\`sealmilter encrypt\` / \`sealmilter lookup\`: one HTTP/2 connection, requests multiplexed) | $(f "$(get cold_call_ms_p50)") ms ($(range cold_call)) | $(x "$(get cold_call_ms_p50)")x | $(f "$(get cold_call_cpu_ms_p50)") ms |
| $n recipients as the milter runs them, the first such message after start (the directory source opens the connections it lacks; one run, not in the medians) | $(f "$(get cold_rcpt_first_burst_ms)") ms | $(x "$(get cold_rcpt_first_burst_ms)")x | $(f "$(get cold_rcpt_first_burst_cpu_ms)") ms |
| $n \`require\` recipients (each RCPT waits for its own answer, and the MTA sends the next RCPT only after the reply; one run) | $(f "$(get cold_require_ms)" 0) ms | $(x "$(get cold_require_ms)")x | |

Every lookup of the directory source goes through its one HTTP client (\`lookup/http.hpp\`: one
curl multi handle on one I/O thread, HTTP/2 multiplexing, at most \`directory.max_connections\`
connections to the host), so concurrent lookups share a connection: in this run nginx served the
$(f "$requests" 0) directory requests over $connections TLS connection(s), kept open for the next
message. The first message after a start pays for one TLS handshake, not one per recipient. The directory stand-in itself (nginx's worker and the backend) used
$(f "$HARNESS_MS" 0) ms of CPU for all $(f "$requests" 0) requests, on the same $(nproc) cores.
A \`require\` recipient is checked at RCPT time so that a missing certificate refuses that
recipient alone; cold \`require\` lookups therefore add up, one directory round trip per recipient.
The cache answers the next message to the same recipients (below).

### Warm cache (SQLite, one address per call, answer validated)

| | |
|---|---|
| Lookups | $(f "$(get warm_iterations)" 0) (cycling over the $n cached addresses) |
| Latency p50 / p99 | $(f "$(get warm_ms_p50)" 3) ms / $(f "$(get warm_ms_p99)" 3) ms |
| Lookups per second, 1 thread | $(f "$(get warm_per_s_1t)" 0) |
| Lookups per second, 2 threads sharing the stack | $(f "$(get warm_per_s_2t)" 0) |

### DNS SMIMEA source (same run)

NSD $(nsd -v 2>&1 | sed -n 's/^NSD version //p' | head -1) on loopback serves the same $n certificates as SMIMEA usage 1 records in
\`partner.example.\`, signed with ldns-signzone (ECDSA P-256); the \`dns\` source (libunbound,
DNSSEC validated in process from the zone's DS) forwards to it. No latency is added to DNS
(unlike the directory's ${DELAY} ms), so these rows measure our cost: libunbound's queries and
validation plus the certificate validation. *Cold* = a new lookup stack per run (a new
libunbound context, its DNS cache empty; building it is not timed); *warm* = libunbound's cache
(the \`dns\` source does not use the SQLite cache).

| Case | Wall time | vs directory, 1 recipient (cold) |
|---|---|---|
| dns, 1 recipient, cold | $(f "$(get dns_cold_single_ms_p50)" 2) ms ($(range dns_cold_single)) | $(x "$(get dns_cold_single_ms_p50)")x |
| dns, $n recipients as the milter runs them, cold | $(f "$(get dns_cold_rcpt_ms_p50)" 2) ms ($(range dns_cold_rcpt)) | $(x "$(get dns_cold_rcpt_ms_p50)")x |
| \`cache,directory,dns\`: $n recipients in one \`resolve()\` call, cold (directory and dns asked in parallel, the directory's answer wins by priority) | $(f "$(get multi_cold_call_ms_p50)") ms ($(range multi_cold_call)) | $(x "$(get multi_cold_call_ms_p50)")x; vs the directory alone (\`cache,directory\`, row above): $(python3 -c "print(f'{$(get multi_cold_call_ms_p50) / $(get cold_call_ms_p50):.2f}')")x |
| dns, warm (libunbound's cache), one address per call | p50 $(f "$(get dns_warm_ms_p50)" 3) ms, p99 $(f "$(get dns_warm_ms_p99)" 3) ms; $(f "$(get dns_warm_per_s_1t)" 0) lookups/s on 1 thread | |

The several-sources row opens a new stack per run (a new libunbound context) and one directory
connection before timing, where the directory-only row reuses the connections of earlier runs.
MD
python3 "$ROOT/bench/sections.py" "$ROOT/BENCHMARKS.md" lookup "$TMP/section.md" || die "cannot update BENCHMARKS.md"
cat "$TMP/results" >&2
echo "bench/lookup.sh: wrote the lookup section of $ROOT/BENCHMARKS.md in $((SECONDS - START)) s" >&2
