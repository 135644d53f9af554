#!/usr/bin/env bash
# bench/sign.sh — outbound signing (issue 12): sign-then-encrypt and sign only, 10 KiB and 1 MiB
# messages per second in process, against encrypt only and against the script way
# (`openssl cms -sign | openssl cms -encrypt` processes), same run; writes the "signing" section
# of BENCHMARKS.md.
#
#   bench/sign.sh [BUILD_DIR] [ROUNDS] [PER_ROUND]     (defaults: <repo>/build, 5, 40)
#
# Needs: cmake, a C++20 compiler, openssl, python3, a build with SEALMILTER_TESTS=ON (the test
# PKI makes the keys). About a minute.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:-$ROOT/build}
ROUNDS=${2:-5}
PER_ROUND=${3:-40}
case $BUILD in /*) ;; *) BUILD=$PWD/$BUILD ;; esac
COMMAND="bench/sign.sh${1:+ $1}${2:+ $2}${3:+ $3}"
die() { echo "bench/sign.sh: $*" >&2; exit 1; }
for tool in cmake python3 openssl; do command -v "$tool" >/dev/null || die "missing $tool"; done
if [[ ! -f $BUILD/CMakeCache.txt ]] || ! grep -q '^SEALMILTER_BENCH:BOOL=ON$' "$BUILD/CMakeCache.txt"; then
  cmake -S "$ROOT" -B "$BUILD" -DSEALMILTER_BENCH=ON -DSEALMILTER_TESTS=ON >/dev/null || die "cmake configure failed"
fi
cmake --build "$BUILD" -j2 --target bench_sign >/dev/null || die "build failed"
FRAGMENT=$(mktemp "${TMPDIR:-/tmp}/sealmilter-sign-bench.XXXXXX")
trap 'rm -f -- "$FRAGMENT"' EXIT
BIN=$(find "$BUILD" -name bench_sign -type f -perm -u+x | head -n1)
[[ -n $BIN ]] || die "bench_sign not built"
"$BIN" --out "$FRAGMENT" --rounds "$ROUNDS" --per-round "$PER_ROUND" --command "$COMMAND" || die "bench_sign failed"
python3 "$ROOT/bench/sections.py" "$ROOT/BENCHMARKS.md" signing "$FRAGMENT" || die "cannot update BENCHMARKS.md"
echo "bench/sign.sh: BENCHMARKS.md section signing updated" >&2
