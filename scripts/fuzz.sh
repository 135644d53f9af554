#!/usr/bin/env bash
# scripts/fuzz.sh [SECONDS_PER_HARNESS] — builds the libFuzzer harnesses of fuzz/ with clang,
# ASan and UBSan (build-fuzz/), runs each one for a bounded time on a temporary copy of its
# seed corpus, and prints per harness: executions, coverage (libFuzzer's cov: edges out of the
# instrumented total, and ft: features) and whether it crashed. Exit 1 when any harness
# crashed, leaked, timed out or ran out of memory; 2 when the toolchain is missing (run
# scripts/deps.sh: this script installs nothing).
#
#   SECONDS_PER_HARNESS              default 60
#   SEALMILTER_FUZZ_ONLY="a b"       run only these harnesses (names as in fuzz/CMakeLists.txt)
#   SEALMILTER_FUZZ_BUILD_DIR=DIR    default build-fuzz
#   SEALMILTER_FUZZ_CORPUS_OUT=DIR   keep each grown corpus in DIR/<harness> (default: discarded)
#   SEALMILTER_FUZZ_COVERAGE=1       afterwards, replay every grown corpus through a build with
#                                    clang source coverage (<build>-cov) and print the line and
#                                    branch coverage of each library file (llvm-profdata/llvm-cov
#                                    from package llvm-14)
#
# A crash leaves its input in <build>/fuzz-artifacts/<harness>/; replay it with
#   <build>/fuzz/fuzz_<harness> <that file>
# and turn it into a regression test under tests/unit/fuzz_regressions/.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$(pwd)
seconds=${1:-60}
[[ "$seconds" =~ ^[0-9]+$ ]] || { echo "usage: scripts/fuzz.sh [SECONDS_PER_HARNESS]" >&2; exit 64; }
build=${SEALMILTER_FUZZ_BUILD_DIR:-build-fuzz}
harnesses=(transform transform_chunked directory_response policy config harvest certificate decrypt)
if [[ -n "${SEALMILTER_FUZZ_ONLY:-}" ]]; then read -r -a harnesses <<<"$SEALMILTER_FUZZ_ONLY"; fi

for tool in clang clang++ cmake; do
  command -v "$tool" >/dev/null || { echo "fuzz: $tool not found (scripts/deps.sh installs it)" >&2; exit 2; }
done
if ! clang++ -print-file-name=libclang_rt.fuzzer-x86_64.a | grep -q /; then
  echo "fuzz: libFuzzer runtime not found (package libclang-rt-14-dev; scripts/deps.sh)" >&2
  exit 2
fi

coverage=${SEALMILTER_FUZZ_COVERAGE:-0}
profdata=$(command -v llvm-profdata-14 || command -v llvm-profdata || true)
llvmcov=$(command -v llvm-cov-14 || command -v llvm-cov || true)
if [[ "$coverage" = 1 && ( -z "$profdata" || -z "$llvmcov" ) ]]; then
  echo "fuzz: SEALMILTER_FUZZ_COVERAGE=1 needs llvm-profdata and llvm-cov (package llvm-14)" >&2
  exit 2
fi

# build_fuzzers DIR [cmake args...]
build_fuzzers() {
  local dir=$1
  shift
  cmake -S "$src" -B "$dir" -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DSEALMILTER_FUZZ=ON -DSEALMILTER_TESTS=OFF -DSEALMILTER_BENCH=OFF -DSEALMILTER_WERROR=OFF "$@" >/dev/null
  cmake --build "$dir" --target fuzzers -j "$(nproc)"
}
echo "fuzz: building $build (clang, -fsanitize=fuzzer,address,undefined)"
build_fuzzers "$build"
if [[ "$coverage" = 1 ]]; then
  echo "fuzz: building $build-cov (the same, plus -fprofile-instr-generate -fcoverage-mapping)"
  build_fuzzers "$build-cov" -DCMAKE_C_FLAGS="-fprofile-instr-generate -fcoverage-mapping" \
    -DCMAKE_CXX_FLAGS="-fprofile-instr-generate -fcoverage-mapping" -DCMAKE_EXE_LINKER_FLAGS="-fprofile-instr-generate"
fi

work=$(mktemp -d /tmp/sealmilter-fuzz-XXXXXX)
trap 'rm -rf "$work"' EXIT

# Copies each readable file (at most 256 KiB: bigger seeds only slow the fuzzer down, and
# libFuzzer would cut them to -max_len anyway) into $1, named by content so that the same
# seed from two places is kept once.
add_seeds() {
  local dest=$1 f sum
  shift
  for f in "$@"; do
    [[ -f "$f" && -r "$f" ]] || continue
    (($(stat -c %s "$f") <= 262144)) || continue
    sum=$(sha1sum "$f" | cut -d' ' -f1)
    cp "$f" "$dest/$sum"
  done
}

# Seeds (tests/data, ../shared/interop, fuzz/corpus), dictionary and input size per harness.
setup_harness() {
  local name=$1 dest=$2
  shopt -s nullglob globstar
  local messages=("$src"/tests/data/messages/*.eml "$src"/tests/data/nss-smime/*.eml "$src"/tests/data/nss-smime/alice.mime
                  "$src"/tests/data/nss-smime/alice.textplain "$src"/../shared/interop/**/*.eml "$src"/fuzz/corpus/transform/*)
  case "$name" in
  transform | transform_chunked | harvest | decrypt)
    add_seeds "$dest" "${messages[@]}"; dict=mime; max_len=65536 ;;
  directory_response)
    add_seeds "$dest" "$src"/fuzz/corpus/directory_response/*; dict=directory; max_len=65536 ;;
  policy)
    add_seeds "$dest" "$src"/conf/policy "$src"/fuzz/corpus/policy/*; dict=policy; max_len=8192 ;;
  config)
    add_seeds "$dest" "$src"/conf/sealmilter.conf "$src"/fuzz/corpus/config/*; dict=config; max_len=8192 ;;
  certificate)
    add_seeds "$dest" "$src"/tests/data/nss-smime/*.pem "$src"/../shared/interop/**/*.pem "$src"/tests/data/hostile/*.pem \
      "$src"/tests/data/hostile/*.der "$src"/tests/data/hostile/*.crt "$src"/fuzz/corpus/certificate/*
    dict=certificate; max_len=65536 ;;
  *) echo "fuzz: unknown harness $name" >&2; return 1 ;;
  esac
  shopt -u nullglob globstar
}

# libFuzzer's own crash handling decides; leaks are reported at the end of each input.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:symbolize=1
for s in llvm-symbolizer-14 llvm-symbolizer; do
  if command -v "$s" >/dev/null; then export ASAN_SYMBOLIZER_PATH=$(command -v "$s"); break; fi
done
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
failed=0
summary=()
for name in "${harnesses[@]}"; do
  bin="$build/fuzz/fuzz_$name"
  [[ -x "$bin" ]] || { echo "fuzz: no harness $bin" >&2; exit 2; }
  corpus="$work/$name"
  artifacts="$src/$build/fuzz-artifacts/$name"
  [[ "$build" = /* ]] && artifacts="$build/fuzz-artifacts/$name"
  mkdir -p "$corpus"
  rm -rf "$artifacts" && mkdir -p "$artifacts"
  setup_harness "$name" "$corpus"
  seeds=$(find "$corpus" -type f | wc -l)
  log="$work/$name.log"
  echo "fuzz: $name for ${seconds}s ($seeds seeds)"
  rc=0
  "$bin" "$corpus" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -max_len="$max_len" \
    -dict="$src/fuzz/dict/$dict.dict" -artifact_prefix="$artifacts/" -print_final_stats=1 >"$log" 2>&1 || rc=$?

  # libFuzzer's last status line ("#N DONE cov: C ft: F corp: ...") and its counter total.
  last=$(grep -E '^#[0-9]+' "$log" | grep -E 'cov: [0-9]+' | tail -n 1 || true)
  execs=$(grep -oE '^stat::number_of_executed_units: [0-9]+' "$log" | grep -oE '[0-9]+$' || true)
  [[ -n "$execs" ]] || execs=$(sed -nE 's/^#([0-9]+).*/\1/p' <<<"$last")
  cov=$(grep -oE 'cov: [0-9]+' <<<"$last" | grep -oE '[0-9]+' || echo "?")
  ft=$(grep -oE 'ft: [0-9]+' <<<"$last" | grep -oE '[0-9]+' || echo "?")
  total=$(grep -oE '\([0-9]+ inline 8-bit counters\)' "$log" | grep -oE '[0-9]+' | head -n 1 || true)
  pct="?"
  [[ -n "$total" && "$cov" != "?" ]] && pct=$(awk -v c="$cov" -v t="$total" 'BEGIN { printf "%.1f", 100 * c / t }')
  found=$(find "$artifacts" -type f | head -n 5)
  # A timeout that does not happen again on replay was the host stalling (CI machines are
  # shared), not a slow input: warn, keep the input, do not fail. A real hang replays.
  stall=""
  if ((rc != 0)) && [[ -n "$found" ]] && ! grep -qv '/timeout-' <<<"$found"; then
    stall=1
    for f in $found; do
      t0=$(date +%s%N)
      "$bin" -timeout=10 -rss_limit_mb=2048 "$f" >"$work/$name.replay.log" 2>&1 || stall=""
      ms=$((($(date +%s%N) - t0) / 1000000))
      ((ms < 2000)) || stall=""
      echo "fuzz: $name: $(basename "$f") replays in ${ms} ms" >&2
    done
  fi
  if [[ -n "$stall" ]]; then
    status="ok (a timeout that did not replay: host stall)"
    echo "fuzz: WARNING: $name timed out once but the input replays quickly; kept in $artifacts" >&2
  elif ((rc != 0)) || [[ -n "$found" ]]; then
    status="CRASH (rc $rc)"
    failed=1
    echo "fuzz: $name FAILED; the end of its log:" >&2
    grep -vE '^#[0-9]+ +(NEW|REDUCE|pulse)' "$log" | tail -n 60 >&2
    for f in $found; do echo "fuzz: input kept: $f (replay: $bin $f)" >&2; done
  else
    status="ok"
  fi
  if [[ "$coverage" = 1 ]]; then  # each input of the grown corpus once, counted
    mkdir -p "$work/profiles"
    LLVM_PROFILE_FILE="$work/profiles/$name.profraw" "$build-cov/fuzz/fuzz_$name" -runs=0 -rss_limit_mb=2048 \
      -timeout=10 -max_len="$max_len" "$corpus" >"$work/$name.cov.log" 2>&1 || echo "fuzz: coverage replay of $name failed" >&2
  fi
  if [[ -n "${SEALMILTER_FUZZ_CORPUS_OUT:-}" ]]; then
    mkdir -p "$SEALMILTER_FUZZ_CORPUS_OUT/$name" && cp "$corpus"/* "$SEALMILTER_FUZZ_CORPUS_OUT/$name/" 2>/dev/null || true
  fi
  summary+=("$(printf '%-19s %12s %7s %9s %7s %8s  %s' "$name" "${execs:-?}" "$cov" "${total:-?}" "$pct%" "$ft" "$status")")
done

if [[ "$coverage" = 1 ]] && compgen -G "$work/profiles/*.profraw" >/dev/null; then
  "$profdata" merge -sparse "$work"/profiles/*.profraw -o "$work/merged.profdata"
  objects=()
  for name in "${harnesses[@]}"; do objects+=(-object "$build-cov/fuzz/fuzz_$name"); done
  echo
  echo "fuzz: source coverage of the libraries by the grown corpora of: ${harnesses[*]}"
  printf '%-28s %7s %7s %9s %9s\n' file lines "lines%" branches "branches%"
  "$llvmcov" report "${objects[@]:1}" -instr-profile="$work/merged.profdata" \
    -ignore-filename-regex='^/usr/|/fuzz/|/tests/|/build[^/]*/|\.hpp$' |
    awk 'NF == 13 && $1 != "Filename" { printf "%-28s %7s %7s %9s %9s\n", $1, $8, $10, $11, $13 }'
fi

echo
echo "fuzz: ${seconds}s per harness, ASan + UBSan (cov = edges covered out of the instrumented edges of the binary)"
printf '%-19s %12s %7s %9s %7s %8s  %s\n' harness executions cov "of" "cov%" ft status
for line in "${summary[@]}"; do echo "$line"; done
if ((failed)); then
  echo "fuzz: FAILED (inputs under $build/fuzz-artifacts/)" >&2
  exit 1
fi
echo "fuzz: no crash"
