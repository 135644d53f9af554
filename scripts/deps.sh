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
  debhelper lintian dpkg-dev fakeroot groff-base
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
echo "deps: installing ${missing[*]}"
# Postfix is only used by the tests, from private config directories: install it without
# touching the system's mail configuration.
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
