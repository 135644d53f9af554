#!/usr/bin/env bash
# setup.sh — the README's first command: installs the dependencies (Debian 12 packages), builds
# sealmilter, creates its directories (as systemd/sealmilter.tmpfiles.conf does) and runs the
# gateway — `sealmilter run`, the milter daemon — on its embedded defaults: it listens on
# inet:8891@127.0.0.1 for Postfix (docs/postfix.md), looks certificates up in
# /var/lib/sealmilter/certs and the cache /var/lib/sealmilter/cache.db, encrypts
# opportunistically, and re-injects split copies to 127.0.0.1:10027. Ctrl-C stops it.
#
#   ./setup.sh                 install, build, run the daemon in the foreground
#   SEALMILTER_SETUP_SMOKE=1 ./setup.sh
#                              ... start it, prove it answers the milter protocol (miltertest),
#                              stop it and exit (used by CI)
set -euo pipefail
cd "$(dirname "$0")"
scripts/deps.sh
# Same build directory and flags as run-tests.sh, without the test and benchmark targets.
scripts/build.sh build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSEALMILTER_TESTS=OFF -DSEALMILTER_BENCH=OFF
./build/sealmilter --version

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
$SUDO install -d -m 0750 /etc/sealmilter /var/lib/sealmilter /var/lib/sealmilter/certs \
  /var/lib/sealmilter/certs/harvested
$SUDO install -d -m 0700 /var/spool/sealmilter

echo "--- sealmilter check-config (embedded defaults) ---"
$SUDO ./build/sealmilter check-config || true  # reports what an administrator still has to set

if [[ "${SEALMILTER_SETUP_SMOKE:-0}" != "1" ]]; then
  echo "--- starting the milter on its embedded defaults (Ctrl-C stops it) ---"
  exec $SUDO ./build/sealmilter run
fi

log=$(mktemp)
$SUDO ./build/sealmilter run >"$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 1 100); do
  grep -q "listening on" "$log" && break
  kill -0 "$pid" 2>/dev/null || { cat "$log"; echo "setup: the milter exited" >&2; exit 1; }
  sleep 0.1
done
cat "$log"
cat >"$log.lua" <<'LUA'
local conn = mt.connect("inet:8891@127.0.0.1", 40, 0.25)
assert(conn, "cannot connect")
assert(mt.conninfo(conn, "app.example", "127.0.0.1") == nil)
assert(mt.getreply(conn) == SMFIR_CONTINUE)
assert(mt.mailfrom(conn, "<app@example.com>") == nil)
assert(mt.getreply(conn) == SMFIR_CONTINUE)
assert(mt.rcptto(conn, "<someone@example.net>") == nil)
assert(mt.getreply(conn) == SMFIR_CONTINUE)
mt.disconnect(conn)
LUA
miltertest -s "$log.lua"
rm -f "$log.lua"
echo "setup: sealmilter run answered the milter protocol on inet:8891@127.0.0.1"
