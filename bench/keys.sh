#!/usr/bin/env bash
# bench/keys.sh — the key store benchmark (bench/bench_keys.cpp) -> the "keys" section of
# BENCHMARKS.md. usage: bench/keys.sh [BUILD_DIR] [KEYS]   (defaults: build, 100000)
# Needs about 400 MB in $TMPDIR for the 100,000-key store; removes it afterwards.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build}
KEYS=${2:-100000}
cmake --build "$BUILD" -j2 --target bench_keys
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sealmilter-bench-keys.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
"$BUILD/bench_keys" "$WORK/run" "$KEYS" > "$WORK/keys.md"
python3 "$ROOT/bench/sections.py" "$ROOT/BENCHMARKS.md" keys "$WORK/keys.md"
cat "$WORK/keys.md"
