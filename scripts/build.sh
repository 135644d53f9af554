#!/usr/bin/env bash
# scripts/build.sh BUILD_DIR [cmake args...] — configure and build with the project's flags.
set -euo pipefail
dir=${1:?usage: build.sh BUILD_DIR [cmake args...]}
shift
src=$(cd "$(dirname "$0")/.." && pwd)
cmake -S "$src" -B "$dir" -DSEALMILTER_WERROR=ON "$@" >/dev/null
cmake --build "$dir" -j "$(nproc)"
