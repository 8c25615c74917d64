#!/usr/bin/env bash
# Installs missing dependencies, then configures and builds tally into ./build, warnings as
# errors (-DTALLY_WERROR=ON; pass -DTALLY_WERROR=OFF for a newer compiler's new warnings).
#   scripts/build.sh [extra cmake args]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
echo "build: configuring and building into ./build (log: build/build.log)..." >&2
mkdir -p build
if ! { cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTALLY_WERROR=ON "$@" &&
       cmake --build build -j"$(nproc)"; } >build/build.log 2>&1; then
  tail -n 40 build/build.log >&2
  echo "build: FAILED (full log: build/build.log)" >&2
  exit 1
fi
echo "build: done" >&2
