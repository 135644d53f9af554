#!/usr/bin/env bash
# bench/token.sh — decryptions per second with a key on a SoftHSM2 token vs the same key in a
# file (keys/token, in process, same run); writes the "pkcs11" section of BENCHMARKS.md.
#
#   bench/token.sh [BUILD_DIR] [ROUNDS] [PER_ROUND]     (defaults: <repo>/build, 5, 100)
#
# 1. builds bench_token; 2. bench_token makes its own SoftHSM2 config and token in a temp dir,
#    an RSA-2048 and an EC P-256 key (each in a PEM file and imported into the token), and a
#    10 KiB message to each; ROUNDS rounds of PER_ROUND decryptions per key, file and token
#    interleaved; 3. bench/sections.py replaces the "pkcs11" section (the others stay).
# Needs: cmake, a C++20 compiler, softhsm2, opensc (pkcs11-tool), python3. About 20 seconds.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:-$ROOT/build}
ROUNDS=${2:-5}
PER_ROUND=${3:-100}
case $BUILD in /*) ;; *) BUILD=$PWD/$BUILD ;; esac
COMMAND="bench/token.sh${1:+ $1}${2:+ $2}${3:+ $3}"
die() { echo "bench/token.sh: $*" >&2; exit 1; }
for tool in cmake python3 softhsm2-util pkcs11-tool; do command -v "$tool" >/dev/null || die "missing $tool"; done
if [[ ! -f $BUILD/CMakeCache.txt ]] || ! grep -q '^SEALMILTER_BENCH:BOOL=ON$' "$BUILD/CMakeCache.txt"; then
  cmake -S "$ROOT" -B "$BUILD" -DSEALMILTER_BENCH=ON >/dev/null || die "cmake configure failed"
fi
cmake --build "$BUILD" -j2 --target bench_token >/dev/null || die "build failed"
FRAGMENT=$(mktemp "${TMPDIR:-/tmp}/sealmilter-token-bench.XXXXXX")
trap 'rm -f -- "$FRAGMENT"' EXIT
"$BUILD/bench_token" --out "$FRAGMENT" --rounds "$ROUNDS" --per-round "$PER_ROUND" --command "$COMMAND" \
  || die "bench_token failed"
python3 "$ROOT/bench/sections.py" "$ROOT/BENCHMARKS.md" pkcs11 "$FRAGMENT" || die "cannot update BENCHMARKS.md"
echo "bench/token.sh: BENCHMARKS.md section pkcs11 updated" >&2
