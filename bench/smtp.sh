#!/usr/bin/env bash
# bench/smtp.sh — SMTP throughput of Postfix with sealmilter against the floor of any milter
# (a no-op libmilter filter) and a real peer (OpenDKIM signing), in the same interleaved rounds.
#
#   bench/smtp.sh [BUILD_DIR] [-- smtp_throughput.py options]
#       (default BUILD_DIR: <repo>/build; needs root for Postfix; e.g. `bench/smtp.sh build`,
#        `bench/smtp.sh build -- --rounds 3 --messages 300`)
#
# Builds `sealmilter` and `bench_noop_milter` if needed, then bench/smtp_throughput.py starts a
# private Postfix on loopback (tests/e2e/gateway.py) with one SMTP service per configuration:
# Postfix alone, the no-op filter (bench/noop_milter.c, sealmilter's protocol steps), OpenDKIM
# (its own config and a throw-away RSA-2048 key from opendkim-genkey in a temp dir, started and
# stopped by PID) and sealmilter encrypting; each milter on a unix socket and on inet. It runs
# smtp-source into each (10 KiB and 100 KiB, 300 messages per run, 5 rounds; a round runs every
# configuration once, order rotated), reads CPU per message per process group (Postfix, milter,
# load generator, sink) from /proc, measures DATA -> 250 latency, checks that OpenDKIM signs and
# sealmilter encrypts in this run, and replaces the "smtp" section of BENCHMARKS.md
# (bench/sections.py). About 5 minutes on 2 cores; the machine's load is recorded beside the
# figures (the ratios from interleaved rounds are what to compare).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$ROOT/build
if [[ $# -gt 0 && $1 != -- ]]; then BUILD=$1; shift; fi
[[ ${1:-} == -- ]] && shift
case $BUILD in /*) ;; *) BUILD=$PWD/$BUILD ;; esac
COMMAND="bench/smtp.sh${*:+ -- $*}"
for tool in postfix smtp-source smtp-sink python3 opendkim opendkim-genkey; do
  command -v "$tool" >/dev/null || [[ -x /usr/sbin/$tool ]] || { echo "bench/smtp.sh: missing $tool (scripts/deps.sh)" >&2; exit 1; }
done
[[ -f $BUILD/CMakeCache.txt ]] || cmake -S "$ROOT" -B "$BUILD" >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target sealmilter bench_noop_milter >/dev/null
out=$(mktemp)
trap 'rm -f "$out"' EXIT
python3 "$ROOT/bench/smtp_throughput.py" --sealmilter "$BUILD/sealmilter" --noop "$BUILD/bench_noop_milter" \
  --source "$ROOT" --command "$COMMAND" "$@" >"$out"
python3 "$ROOT/bench/sections.py" "$ROOT/BENCHMARKS.md" smtp "$out"
echo "bench/smtp.sh: wrote the smtp section of $ROOT/BENCHMARKS.md" >&2
