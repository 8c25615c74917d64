#!/usr/bin/env bash
# The test command: installs what is missing, builds everything, runs every test (unit and
# end-to-end). Usage: scripts/test.sh [ctest args, e.g. -R metrics -L integration]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
cd build
ctest --output-on-failure --timeout 900 "$@"
