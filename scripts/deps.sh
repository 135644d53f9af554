#!/usr/bin/env bash
# scripts/deps.sh — installs every build and test dependency from Debian 12 packages.
# Idempotent; needs root (or sudo). Used by setup.sh, run-tests.sh and .ci/run.
set -euo pipefail
PACKAGES=(
  build-essential cmake pkg-config git ca-certificates
  libssl-dev openssl libgmime-3.0-dev libboost-program-options-dev
  libmilter-dev libcurl4-openssl-dev libsqlite3-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libnss3-tools python3 time
  nginx-light
  postfix swaks miltertest opendkim opendkim-tools
  clang libclang-rt-14-dev llvm-14 clang-tidy
  libp11-dev libp11-kit-dev p11-kit-modules softhsm2 opensc
  libldap-dev slapd ldap-utils
  libunbound-dev dns-root-data nsd ldnsutils
  libpq-dev postgresql-15 postgresql-client-15
  prometheus-cpp-dev curl m4
  debhelper lintian dpkg-dev fakeroot groff-base
  chromium chromium-driver python3-selenium fonts-liberation
  libmicrohttpd-dev
)
# Sendmail for the e2e `sendmail` group: Debian's sendmail-bin conflicts with Postfix, so its
# packages are downloaded and extracted (never installed) into SENDMAIL_ROOT, where
# tests/e2e/sendmail_group.py runs a private instance from.
SENDMAIL_ROOT=${SEALMILTER_SENDMAIL_ROOT:-/var/cache/sealmilter-test/sendmail-root}
extract_sendmail() {
  [[ -x $SENDMAIL_ROOT/usr/libexec/sendmail/sendmail ]] && return 0
  local dl
  dl=$(mktemp -d)
  chmod 755 "$dl"  # apt downloads as _apt
  (cd "$dl" && apt-get download sendmail-bin sendmail-cf sendmail-base >/dev/null)
  mkdir -p "$SENDMAIL_ROOT"
  for deb in "$dl"/*.deb; do dpkg-deb -x "$deb" "$SENDMAIL_ROOT"; done
  rm -rf "$dl"
  echo "deps: Sendmail extracted into $SENDMAIL_ROOT (for the e2e sendmail group)"
}
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "deps: all ${#PACKAGES[@]} packages present"
  extract_sendmail
  exit 0
fi
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
echo "deps: installing ${missing[*]}"
# Postfix is only used by the tests, from private config directories: install it without
# touching the system's mail configuration.
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
# slapd is only used by the tests (tests/support/ldap/start_slapd.sh, private directories):
# install it without a system directory.
echo "slapd slapd/no_configuration boolean true" | $SUDO debconf-set-selections
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
extract_sendmail
