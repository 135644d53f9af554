#!/usr/bin/env bash
# bench/smtp.sh — SMTP throughput and added latency of Postfix with and without sealmilter.
#
#   bench/smtp.sh [BUILD_DIR]        (default BUILD_DIR: <repo>/build; needs root for Postfix)
#
# Builds `sealmilter` if needed, then bench/smtp_throughput.py starts a private Postfix on
# loopback (tests/e2e/gateway.py), measures smtp-source into the service with the milter and
# into the milter-bypassing service of the same instance (10 KiB and 100 KiB, warm cache,
# 3 alternating rounds), a `* never` policy as the protocol floor, and per-message latency;
# the result replaces the "smtp" section of BENCHMARKS.md. Takes about 2 minutes on 2 cores.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:-$ROOT/build}
case $BUILD in /*) ;; *) BUILD=$PWD/$BUILD ;; esac
for tool in postfix smtp-source smtp-sink python3; do
  command -v "$tool" >/dev/null || [[ -x /usr/sbin/$tool ]] || { echo "bench/smtp.sh: missing $tool" >&2; exit 1; }
done
[[ -f $BUILD/CMakeCache.txt ]] || cmake -S "$ROOT" -B "$BUILD" >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target sealmilter >/dev/null
out=$(mktemp)
trap 'rm -f "$out"' EXIT
python3 "$ROOT/bench/smtp_throughput.py" --sealmilter "$BUILD/sealmilter" --source "$ROOT" >"$out"
python3 "$ROOT/bench/sections.py" "$ROOT/BENCHMARKS.md" smtp "$out"
echo "bench/smtp.sh: wrote the smtp section of $ROOT/BENCHMARKS.md" >&2
