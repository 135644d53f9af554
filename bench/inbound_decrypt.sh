#!/usr/bin/env bash
# bench/inbound_decrypt.sh — inbound decryption figures for BENCHMARKS.md (section "inbound-decrypt").
#
# usage: bench/inbound_decrypt.sh [BUILD_DIR]   (default: build; needs the bench_inbound_decrypt target)
# Runs bench_inbound_decrypt once (bench/bench_inbound_decrypt.cpp says what each row measures) and
# writes the ratios of that same run: in-process decryption against one `openssl cms -decrypt`
# process per message (wall time: the process's own CPU is not the benchmark's), and a ring of
# 100,000 keys against a ring of 1 (CPU and wall time).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build}
BIN=$(find "$BUILD" -name bench_inbound_decrypt -type f -perm -u+x | head -1)
[[ -n $BIN ]] || { echo "bench_inbound_decrypt not built in $BUILD" >&2; exit 1; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
"$BIN" --benchmark_min_time=0.5 --benchmark_format=json --benchmark_out="$TMP/out.json" --benchmark_out_format=json >/dev/null
python3 - "$TMP/out.json" "$TMP/section.md" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
b = {x["name"].split("/iterations")[0]: x for x in d["benchmarks"]}
def ms(n, k="real_time"): return b[n][k]
rows = []
for size, label in ((10240, "10 KiB"), (10485760, "10 MiB")):
    i, o = ms(f"inbound/{size}"), ms(f"openssl_process/{size}")
    rows.append(f"| {label} | {i:.3f} ms | {o:.3f} ms | {o / i:.2f}x |")
r1, rn = b["ring/1"], b["ring/100000"]
ctx = d["context"]
out = [
    "## Inbound decryption (keys.decrypt_inbound)", "",
    "Command: `bench/inbound_decrypt.sh build` (bench/bench_inbound_decrypt.cpp; one run, figures of that run).",
    f"Machine: {ctx.get('num_cpus')} CPUs, load average {', '.join(f'{x:.1f}' for x in ctx.get('load_avg', []))} "
    "(shared with other builds: wall times are noisy, ratios within the run are what to read).", "",
    "In process (`core::open_inbound`: envelope found, key by RecipientIdentifier, AES-256-CBC / RSA-2048, "
    "entity split into a spooled Message) against one `openssl cms -decrypt` process per message, wall time:", "",
    "| plaintext | in process | openssl cms -decrypt process | process / in process |", "|---|---|---|---|", *rows, "",
    "Ring size, 10 KiB message encrypted to the last key added (EC P-256, ECDH), per message:", "",
    "| keys in the ring | CPU | wall |", "|---|---|---|",
    f"| 1 | {r1['cpu_time']:.3f} ms | {r1['real_time']:.3f} ms |",
    f"| 100,000 | {rn['cpu_time']:.3f} ms | {rn['real_time']:.3f} ms |",
    f"| ratio 100,000 / 1 | {rn['cpu_time'] / r1['cpu_time']:.2f}x | {rn['real_time'] / r1['real_time']:.2f}x |", "",
    "The key is found by hash lookup of the envelope's identifiers (target: at most 1.2x with 100,000 keys).",
]
open(sys.argv[2], "w").write("\n".join(out) + "\n")
PY
python3 "$ROOT/bench/sections.py" "$ROOT/BENCHMARKS.md" inbound-decrypt "$TMP/section.md"
cat "$TMP/section.md"
