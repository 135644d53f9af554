#!/usr/bin/env bash
# tests/package/test_package.sh SRC_DIR WORK_DIR [all|build|install] — the Debian package, as an
# administrator meets it (issue 15, part 1):
#   1. builds it with `dpkg-buildpackage -us -uc -b` (DEB_BUILD_OPTIONS=nocheck) from a copy of
#      SRC_DIR's files in WORK_DIR/src (a fixed path, so ccache reuses compiled objects);
#   2. lintian on the binary .deb: no errors;
#   3. installs it with `apt-get install ./DEB` (waits for the dpkg lock) on this machine, checks the conffiles, the service user and
#      its directories, the man pages;
#   4. runs `sealmilter check-config` from the installed files, as root and as the user;
#   5. starts the installed binary as the service user with the unit's ExecStart line (plus a
#      free loopback port), speaks the milter protocol to it with miltertest (a message to
#      end of data), stops it by PID;
#   6. purges the package and checks nothing of it is left: its files, /etc/sealmilter,
#      /var/lib/sealmilter, /var/spool/sealmilter, nothing owned by the user in /etc /var /usr.
# `build` runs steps 1-2 and leaves the package as WORK_DIR/sealmilter.deb (it changes nothing on
# the machine, so it can run beside other tests); `install` runs steps 3-6 on the package named
# by SEALMILTER_PACKAGE_DEB; `all` (the default) runs every step.
# Existing /etc/sealmilter, /var/lib/sealmilter, /var/spool/sealmilter (./setup.sh makes them)
# are moved aside for the test and put back afterwards. Needs root. Prints PASS lines; exit 1
# on the first failure.
set -euo pipefail
SRC=$(cd "$1" && pwd)
WORK=$2
MODE=${3:-all}
[[ $MODE =~ ^(all|build|install)$ ]] || { echo "usage: test_package.sh SRC_DIR WORK_DIR [all|build|install]" >&2; exit 64; }
[[ $MODE != install || -n ${SEALMILTER_PACKAGE_DEB:-} ]] || { echo "install: set SEALMILTER_PACKAGE_DEB" >&2; exit 64; }
STATE_DIRS=(/etc/sealmilter /var/lib/sealmilter /var/spool/sealmilter)
SAVED=()
PID=""

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "PASS: $*"; }

cleanup() {
  set +e
  if [[ -n "$PID" ]] && kill -0 "$PID" 2>/dev/null; then kill -TERM "$PID"; wait "$PID" 2>/dev/null; fi
  if [[ $MODE != build ]] && dpkg-query -W -f='${Status}' sealmilter 2>/dev/null | grep -q "installed"; then apt-get purge -y -o DPkg::Lock::Timeout=300 sealmilter >/dev/null; fi
  for d in "${SAVED[@]}"; do rm -rf "$d"; mv "$d.pkgtest-saved" "$d"; done
}
trap cleanup EXIT

[[ $(id -u) -eq 0 ]] || fail "needs root (installs a package)"
if [[ $MODE != build ]] && dpkg-query -W -f='${Status}' sealmilter 2>/dev/null | grep -q "install ok installed"; then
  fail "a sealmilter package is already installed; this test would remove it"
fi

# --- 1. build (SEALMILTER_PACKAGE_DEB=FILE: test that .deb instead, e.g. to repeat steps 2-6) ---
rm -rf "$WORK" && mkdir -p "$WORK/src"
if [[ -n "${SEALMILTER_PACKAGE_DEB:-}" ]]; then
  cp "$SEALMILTER_PACKAGE_DEB" "$WORK/"
  deb="$WORK/$(basename "$SEALMILTER_PACKAGE_DEB")"
  pass "testing the given $(basename "$deb") (not built here)"
else
  # The files git knows (tracked and new, not ignored): no build directories.
  (cd "$SRC" && git ls-files -z -co --exclude-standard | tar --null --ignore-failed-read -T - -cf -) | tar -C "$WORK/src" -xf -
  # debhelper (compat 13) points HOME at a directory inside the tree it builds, so ccache's
  # default cache would be thrown away with it: keep the caller's cache.
  export CCACHE_BASEDIR="$WORK/src" CCACHE_NOHASHDIR=1 CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/ccache}"
  if command -v ccache >/dev/null; then export CMAKE_CXX_COMPILER_LAUNCHER=ccache CMAKE_C_COMPILER_LAUNCHER=ccache; fi
  start=$(date +%s)
  (cd "$WORK/src" && DEB_BUILD_OPTIONS="nocheck parallel=2" dpkg-buildpackage -us -uc -b >"$WORK/build.log" 2>&1) ||
    { tail -40 "$WORK/build.log"; fail "dpkg-buildpackage"; }
  deb=$(ls "$WORK"/sealmilter_*.deb)
  pass "dpkg-buildpackage -us -uc -b built $(basename "$deb") in $(($(date +%s) - start)) s"
fi

# --- 2. lintian --------------------------------------------------------------------------------
if [[ $MODE != install ]]; then
  lintian --fail-on error --tag-display-limit 0 "$deb" >"$WORK/lintian.log" 2>&1 || { cat "$WORK/lintian.log"; fail "lintian reports errors"; }
  pass "lintian: no errors ($(grep -c '^[WI]:' "$WORK/lintian.log" || true) warnings/infos, see $WORK/lintian.log)"
fi
if [[ $MODE == build ]]; then
  cp "$deb" "$WORK/sealmilter.deb"
  pass "the package is $WORK/sealmilter.deb"
  exit 0
fi

# --- 3. install -------------------------------------------------------------------------------
for d in "${STATE_DIRS[@]}"; do
  if [[ -e "$d" ]]; then rm -rf "$d.pkgtest-saved"; mv "$d" "$d.pkgtest-saved"; SAVED+=("$d"); fi
done
DEBIAN_FRONTEND=noninteractive apt-get install -y -o DPkg::Lock::Timeout=300 "$deb" >"$WORK/install.log" 2>&1 || { cat "$WORK/install.log"; fail "apt-get install ./deb"; }
conffiles=$(dpkg-query -W -f='${Conffiles}' sealmilter)
for f in /etc/sealmilter/sealmilter.conf /etc/sealmilter/policy; do
  grep -q " $f " <<<"$conffiles " || fail "$f is not a conffile: $conffiles"
done
for f in /usr/sbin/sealmilter /usr/lib/sysusers.d/sealmilter.conf /usr/lib/tmpfiles.d/sealmilter.conf \
  /lib/systemd/system/sealmilter.service /usr/share/man/man8/sealmilter.8.gz /usr/share/man/man5/sealmilter.conf.5.gz \
  /usr/share/doc/sealmilter/README.md /usr/share/doc/sealmilter/install.md; do
  [[ -e "$f" ]] || fail "$f not installed"
done
getent passwd sealmilter >/dev/null || fail "the service user was not created"
[[ $(stat -c %U "/var/spool/sealmilter") == sealmilter && $(stat -c %U /var/lib/sealmilter) == sealmilter ]] ||
  fail "state directories not owned by sealmilter"
[[ $(stat -c %G /etc/sealmilter) == sealmilter ]] || fail "/etc/sealmilter not group sealmilter"
dpkg -L sealmilter >"$WORK/files"
pass "installed: conffiles, unit, sysusers, tmpfiles, man pages; user sealmilter; directories"

# --- 4. check-config from the installed files ----------------------------------------------------
sealmilter check-config >"$WORK/check.log" 2>&1 || { cat "$WORK/check.log"; fail "check-config as root"; }
setpriv --reuid=sealmilter --regid=sealmilter --init-groups -- sealmilter check-config >>"$WORK/check.log" 2>&1 ||
  { cat "$WORK/check.log"; fail "check-config as sealmilter"; }
[[ ! -e /var/lib/sealmilter/cache.db && ! -e /var/spool/sealmilter/reinjected ]] || fail "check-config left state behind"
pass "sealmilter check-config: OK as root and as the service user, nothing left behind"

# --- 5. the unit's ExecStart, as the service user -----------------------------------------------
exec_start=$(sed -n 's/^ExecStart=//p' /lib/systemd/system/sealmilter.service)
[[ -n "$exec_start" ]] || fail "no ExecStart in the unit"
user=$(sed -n 's/^User=//p' /lib/systemd/system/sealmilter.service)
started=""
for attempt in 1 2 3; do
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  # shellcheck disable=SC2086 # the unit's command line is split the way systemd splits it (no quotes in it)
  setpriv --reuid="$user" --regid="$user" --init-groups -- $exec_start "--milter.socket=inet:$port@127.0.0.1" \
    >"$WORK/daemon.log" 2>&1 &
  PID=$!
  for _ in $(seq 1 100); do
    grep -q "listening on" "$WORK/daemon.log" && break
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$PID" 2>/dev/null && grep -q "listening on.*$port" "$WORK/daemon.log"; then started=1; break; fi
  kill -TERM "$PID" 2>/dev/null; wait "$PID" 2>/dev/null || true; PID=""
  echo "attempt $attempt: port $port not ours; retrying"; cat "$WORK/daemon.log"
done
[[ -n "$started" ]] || fail "the daemon did not start"
[[ $(ps -o user= -p "$PID") == "$user" ]] || fail "the daemon does not run as $user"
cat >"$WORK/milter.lua" <<LUA
local conn = mt.connect("inet:$port@127.0.0.1", 40, 0.25)
assert(conn, "cannot connect")
assert(mt.conninfo(conn, "app.example", "127.0.0.1") == nil)
assert(mt.getreply(conn) == SMFIR_CONTINUE)
assert(mt.macro(conn, SMFIC_MAIL, "i", "4PKGTEST") == nil)
assert(mt.mailfrom(conn, "<app@example.com>") == nil)
assert(mt.getreply(conn) == SMFIR_CONTINUE)
assert(mt.rcptto(conn, "<someone@example.net>") == nil)
assert(mt.getreply(conn) == SMFIR_CONTINUE)
assert(mt.header(conn, "From", "app@example.com") == nil)
assert(mt.header(conn, "To", "someone@example.net") == nil)
assert(mt.header(conn, "Subject", "package test") == nil)
assert(mt.bodystring(conn, "hello from the package test\r\n") == nil)
assert(mt.eom(conn) == nil)
local r = mt.getreply(conn)
assert(r == SMFIR_CONTINUE or r == SMFIR_ACCEPT, "end of message not accepted")
mt.disconnect(conn)
LUA
miltertest -s "$WORK/milter.lua" >"$WORK/miltertest.log" 2>&1 || { cat "$WORK/miltertest.log" "$WORK/daemon.log"; fail "miltertest"; }
sleep 0.2
grep -q "4PKGTEST: .*someone@example.net" "$WORK/daemon.log" || { cat "$WORK/daemon.log"; fail "no decision line for the message"; }
kill -TERM "$PID"
for _ in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$PID" 2>/dev/null && fail "the daemon did not stop on SIGTERM"
wait "$PID" || true
PID=""
pass "ExecStart as $user on inet:$port@127.0.0.1: milter protocol to end of message, decision logged, stopped by PID"

# --- 6. purge -----------------------------------------------------------------------------------
DEBIAN_FRONTEND=noninteractive apt-get purge -y -o DPkg::Lock::Timeout=300 sealmilter >"$WORK/purge.log" 2>&1 || { cat "$WORK/purge.log"; fail "apt-get purge"; }
left=()
while read -r f; do
  # Directories (and /lib, a symlink to usr/lib on merged-/usr systems) are shared; files are ours.
  [[ (-f "$f" || -L "$f") && ! -d "$f" ]] && left+=("$f")
done <"$WORK/files"
for d in "${STATE_DIRS[@]}"; do [[ -e "$d" ]] && left+=("$d"); done
while read -r f; do left+=("$f"); done < <(find /etc /var /usr -xdev \( -user sealmilter -o -group sealmilter \) 2>/dev/null)
((${#left[@]} == 0)) || fail "purge left: ${left[*]}"
pass "apt-get purge: no files, state or directories left (the system user stays, as Debian practice has it)"
