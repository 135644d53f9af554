#!/usr/bin/env bash
# bench/smtp_sign.sh — SMTP throughput through Postfix + sealmilter with crypto.sign = always
# against never (encrypt only vs sign-then-encrypt, plain vs sign only), same run, interleaved
# rounds; writes the "smtp-signing" section of BENCHMARKS.md (beside bench/smtp.sh's "smtp").
#
#   bench/smtp_sign.sh [BUILD_DIR] [-- smtp_sign.py options]    (root: a private Postfix; ~1-2 min)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$ROOT/build
if [[ $# -gt 0 && $1 != -- ]]; then BUILD=$1; shift; fi
[[ ${1:-} == -- ]] && shift
case $BUILD in /*) ;; *) BUILD=$PWD/$BUILD ;; esac
COMMAND="bench/smtp_sign.sh${*:+ -- $*}"
for tool in postfix smtp-source smtp-sink python3 openssl; do
  command -v "$tool" >/dev/null || [[ -x /usr/sbin/$tool ]] || { echo "bench/smtp_sign.sh: missing $tool" >&2; exit 1; }
done
[[ -f $BUILD/CMakeCache.txt ]] || cmake -S "$ROOT" -B "$BUILD" >/dev/null
cmake --build "$BUILD" -j2 --target sealmilter >/dev/null
out=$(mktemp)
trap 'rm -f "$out"' EXIT
python3 "$ROOT/bench/smtp_sign.py" --sealmilter "$BUILD/sealmilter" --source "$ROOT" --command "$COMMAND" "$@" >"$out"
python3 "$ROOT/bench/sections.py" "$ROOT/BENCHMARKS.md" smtp-signing "$out"
echo "bench/smtp_sign.sh: wrote the smtp-signing section of $ROOT/BENCHMARKS.md" >&2
