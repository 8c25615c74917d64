#!/usr/bin/env bash
# Installs every build and test dependency of tally from Debian packages, plus the packages named
# as arguments (scripts/fuzz.sh: clang). Idempotent: does nothing when everything is present.
set -euo pipefail
pkgs=(
  build-essential cmake pkg-config
  librdkafka-dev librocksdb-dev libboost1.81-dev libsimdjson-dev libroaring-dev
  libtomlplusplus-dev libcli11-dev libspdlog-dev libfmt-dev libssl-dev libzstd-dev zlib1g-dev
  libjemalloc-dev libgtest-dev libgmock-dev nlohmann-json3-dev libabsl-dev curl zstd
  e2fsprogs  # mkfs.ext4 for the slow-disk test (skipped without it)
  wrk        # the load test (scripts/load.sh --check)
  clang-format  # the format check (tests/format_test.sh)
  universal-ctags  # function lengths for the size check (tests/size_test.sh)
  "$@"
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
