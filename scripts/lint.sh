#!/usr/bin/env bash
# scripts/lint.sh BUILD_DIR — clang-tidy over every source of the libraries (base crypto keys lookup metrics pg
# core conf milter cli) with the repository's .clang-tidy, plus Clang's thread-safety analysis
# (-Wthread-safety: members marked SEALMILTER_GUARDED_BY are only touched under their
# base::Mutex). Any finding fails. Needs the build's compile_commands.json (any compiler:
# clang-tidy re-parses every file with clang).
set -euo pipefail
build=${1:?usage: lint.sh BUILD_DIR}
src=$(cd "$(dirname "$0")/.." && pwd)
[[ -f "$build/compile_commands.json" ]] || { echo "lint: no $build/compile_commands.json" >&2; exit 2; }
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# -Wno-error: the build's -Werror must not turn clang's own (GCC-tuned) warnings into errors
# here; what fails is what .clang-tidy and -Wthread-safety report, as errors.
if ! run-clang-tidy -p "$build" -j "$(nproc)" -quiet \
    -extra-arg=-Wno-error -extra-arg=-Wthread-safety -extra-arg=-Werror=thread-safety \
    "$src/(base|crypto|keys|lookup|core|metrics|pg|conf|milter|cli)/.*\.cpp$" >"$log" 2>&1; then
  sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -E "^$src/.*(warning|error):" | sort -u >&2 || true
  echo "lint: clang-tidy found problems (above)" >&2
  exit 1
fi
n=$(grep -c '^clang-tidy' "$log" || true)
echo "lint: clang-tidy and -Wthread-safety clean over $n files"
