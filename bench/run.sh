#!/usr/bin/env bash
# bench/run.sh — measure sealmilter's encryption throughput and memory, write the transform section of
# BENCHMARKS.md.
#
#   bench/run.sh [BUILD_DIR]        (default BUILD_DIR: <repo>/build)
#
# Steps, all in one run, all on local files:
#   1. configure (SEALMILTER_BENCH=ON) and build `sealmilter` + `bench_transform` if needed;
#   2. make 10 RSA-2048 recipient certificates and the 10 KiB / 10 MiB / 50 MiB test messages
#      (bench_transform --write-message, the same generator the benchmark uses) in a temp dir;
#   3. sanity: the CLI's output and the baseline's output must decrypt with `openssl cms`;
#   4. bench_transform (Google Benchmark, 3 repetitions, JSON in BUILD_DIR/bench_transform.json);
#   5. baseline the way script gateways do it: one `openssl cms -encrypt -aes256` process per
#      message, 200 runs each for 10 KiB (1 and 10 recipients) and 10 MiB (1 recipient);
#   6. the machine bound: `openssl speed -evp aes-256-cbc -bytes 16384` (single core, best of 3);
#   7. peak RSS (/usr/bin/time -v) of `sealmilter encrypt` on a 50 MiB message vs `--version`;
#   8. bench/report.py turns it all into the "transform" section of BENCHMARKS.md (bench/sections.py;
#      written only if every step succeeded; the other sections stay).
# Needs: cmake, a C++20 compiler, libbenchmark-dev, openssl, time (/usr/bin/time), python3.
# Takes about 3-4 minutes on 2 cores. Exits non-zero when any step fails.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:-$ROOT/build}
case $BUILD in /*) ;; *) BUILD=$PWD/$BUILD ;; esac
COMMAND="bench/run.sh${1:+ $1}"
RUNS_SMALL=200   # process-per-message runs of the 10 KiB message
RUNS_LARGE=200   # ... and of the 10 MiB message
START=$SECONDS

die() { echo "bench/run.sh: $*" >&2; exit 1; }
step() { echo "==> $*" >&2; }

for tool in cmake openssl python3 nproc; do
  command -v "$tool" >/dev/null || die "missing tool: $tool"
done
[[ -x /usr/bin/time ]] || die "missing /usr/bin/time (apt-get install time)"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/sealmilter-bench.XXXXXX")
cleanup() { rm -rf -- "$TMP"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
RESULTS=$TMP/results.env
: >"$RESULTS"
record() { printf '%s=%s\n' "$1" "$2" >>"$RESULTS"; }
record load_before "$(cut -d' ' -f1-3 /proc/loadavg)"

# ---- 1. build ----------------------------------------------------------------------------
step "build ($BUILD)"
if [[ ! -f $BUILD/CMakeCache.txt ]] || ! grep -q '^SEALMILTER_BENCH:BOOL=ON$' "$BUILD/CMakeCache.txt"; then
  cmake -S "$ROOT" -B "$BUILD" -DSEALMILTER_BENCH=ON >/dev/null || die "cmake configure failed"
fi
cmake --build "$BUILD" -j"$(nproc)" --target sealmilter bench_transform >/dev/null || die "build failed"
CLI=$BUILD/sealmilter
BENCH=$BUILD/bench_transform
[[ -x $CLI && -x $BENCH ]] || die "build did not produce $CLI and $BENCH"
BUILD_TYPE=$(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$BUILD/CMakeCache.txt")
CXX=$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$BUILD/CMakeCache.txt")
record build_type "${BUILD_TYPE:-RelWithDebInfo (project default)}"
record compiler "$("${CXX:-c++}" --version | head -1)"

# ---- 2. inputs -----------------------------------------------------------------------------
step "recipient certificates and messages"
for i in $(seq 1 10); do
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -keyout "$TMP/k$i.pem" -out "$TMP/c$i.pem" \
    -subj "/CN=Bench Recipient $i" -addext "keyUsage=critical,keyEncipherment" \
    -addext "extendedKeyUsage=emailProtection" -addext "subjectAltName=email:rcpt$i@example.net" \
    2>/dev/null || die "openssl req failed"
done
"$BENCH" --write-message 10240 "$TMP/m10k.eml" || die "cannot write the 10 KiB message"
"$BENCH" --write-message 10485760 "$TMP/m10m.eml" || die "cannot write the 10 MiB message"
"$BENCH" --write-message 52428800 "$TMP/m50m.eml" || die "cannot write the 50 MiB message"

# ---- 3. sanity -------------------------------------------------------------------------------
step "sanity: outputs decrypt"
"$CLI" encrypt --to rcpt1@example.net --cert "$TMP/c1.pem" <"$TMP/m10k.eml" >"$TMP/s.eml" 2>"$TMP/cli.err" \
  || die "sealmilter encrypt failed: $(cat "$TMP/cli.err")"
openssl cms -decrypt -in "$TMP/s.eml" -inkey "$TMP/k1.pem" -recip "$TMP/c1.pem" -out "$TMP/d.eml" 2>/dev/null \
  || die "sealmilter output does not decrypt with openssl cms"
grep -q 'report-q1.pdf' "$TMP/d.eml" || die "decrypted sealmilter output lacks the attachment"
openssl cms -encrypt -aes256 -recip "$TMP/c1.pem" -in "$TMP/m10k.eml" -out "$TMP/o.p7m" 2>/dev/null \
  || die "openssl cms -encrypt failed"
openssl cms -decrypt -in "$TMP/o.p7m" -inkey "$TMP/k1.pem" -recip "$TMP/c1.pem" -out "$TMP/d.eml" 2>/dev/null \
  || die "baseline output does not decrypt"
cmp -s "$TMP/d.eml" "$TMP/m10k.eml" || die "baseline round trip differs"

# ---- 4. in-process benchmark ---------------------------------------------------------------------
step "bench_transform (about 2 minutes)"
TMPDIR=$TMP timeout 480 "$BENCH" --benchmark_repetitions=3 --benchmark_report_aggregates_only=true \
  --benchmark_out="$TMP/bench.json" --benchmark_out_format=json >"$TMP/bench.txt" 2>&1 \
  || { cat "$TMP/bench.txt" >&2; die "bench_transform failed"; }
cp "$TMP/bench.json" "$BUILD/bench_transform.json"

# ---- 5. process-per-message baseline ---------------------------------------------------------------
# Times the loop with bash's `time`: wall clock plus the user+sys CPU of all the processes.
baseline() {  # label runs -- command...
  local label=$1 runs=$2 i t wall user sys
  shift 3
  local TIMEFORMAT='%3R %3U %3S'
  rm -f -- "$TMP/baseline.failed"
  t=$( { time { for ((i = 0; i < runs; i++)); do
           "$@" 2>>"$TMP/baseline.err" || { : >"$TMP/baseline.failed"; break; }
         done; }; } 2>&1 )
  [[ ! -e $TMP/baseline.failed ]] || die "baseline $label failed: $(tail -3 "$TMP/baseline.err")"
  read -r wall user sys <<<"$t"
  record "baseline_${label}_runs" "$runs"
  record "baseline_${label}_wall_s" "$wall"
  record "baseline_${label}_cpu_s" "$(python3 -c "print($user + $sys)")"
}
RECIPS10=()
for i in $(seq 1 10); do RECIPS10+=(-recip "$TMP/c$i.pem"); done
step "baseline: openssl cms per 10 KiB message x$RUNS_SMALL (1 recipient)"
baseline 10KB_1rcpt "$RUNS_SMALL" -- openssl cms -encrypt -aes256 -recip "$TMP/c1.pem" -in "$TMP/m10k.eml" -out /dev/null
step "baseline: openssl cms per 10 KiB message x$RUNS_SMALL (10 recipients)"
baseline 10KB_10rcpt "$RUNS_SMALL" -- openssl cms -encrypt -aes256 "${RECIPS10[@]}" -in "$TMP/m10k.eml" -out /dev/null
step "baseline: openssl cms per 10 MiB message x$RUNS_LARGE (1 recipient)"
baseline 10MB_1rcpt "$RUNS_LARGE" -- openssl cms -encrypt -aes256 -recip "$TMP/c1.pem" -in "$TMP/m10m.eml" -out /dev/null

# ---- 6. AES-256-CBC bound ---------------------------------------------------------------------------
step "openssl speed -evp aes-256-cbc (3 x 3 s)"
for r in 1 2 3; do
  v=$(openssl speed -evp aes-256-cbc -bytes 16384 -seconds 3 -mr 2>/dev/null | sed -n 's/^+F:[0-9]*:AES-256-CBC:\([0-9.]*\)$/\1/p')
  [[ -n $v ]] || die "cannot parse openssl speed output"
  record "aes_speed_run$r" "$v"
done

# ---- 7. memory -----------------------------------------------------------------------------------------
step "peak RSS: sealmilter encrypt on a 50 MiB message"
maxrss() { sed -n 's/^[[:space:]]*Maximum resident set size (kbytes): //p' "$1"; }
/usr/bin/time -v -o "$TMP/rss.idle" "$CLI" --version >/dev/null || die "sealmilter --version failed"
TMPDIR=$TMP /usr/bin/time -v -o "$TMP/rss.enc" "$CLI" encrypt --to rcpt1@example.net --cert "$TMP/c1.pem" \
  <"$TMP/m50m.eml" >/dev/null 2>"$TMP/cli.err" || die "sealmilter encrypt (50 MiB) failed: $(cat "$TMP/cli.err")"
idle=$(maxrss "$TMP/rss.idle"); enc=$(maxrss "$TMP/rss.enc")
[[ -n $idle && -n $enc ]] || die "cannot parse /usr/bin/time -v output"
record rss_idle_kb "$idle"
record rss_encrypt50_kb "$enc"
record rss_encrypt50_wall "$(sed -n 's/^[[:space:]]*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$TMP/rss.enc")"

# ---- 8. report ---------------------------------------------------------------------------------------------
record load_after "$(cut -d' ' -f1-3 /proc/loadavg)"
record command "$COMMAND"
record date "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
record nproc "$(nproc)"
record cpu_model "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
record kernel "$(uname -sr)"
record openssl "$(openssl version)"
record git "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$([[ -z $(git -C "$ROOT" status --porcelain 2>/dev/null) ]] || echo ' + uncommitted changes')"
record json_path "$BUILD/bench_transform.json"
record runtime_s "$((SECONDS - START))"
step "writing BENCHMARKS.md"
python3 "$ROOT/bench/report.py" "$RESULTS" "$TMP/bench.json" >"$TMP/transform.md" || die "report generation failed"
python3 "$ROOT/bench/sections.py" "$ROOT/BENCHMARKS.md" transform "$TMP/transform.md" || die "cannot update BENCHMARKS.md"
step "done in $((SECONDS - START)) s: $ROOT/BENCHMARKS.md"
