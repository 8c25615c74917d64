#!/usr/bin/env bash
# The test command: installs what is missing, builds everything, runs every test (unit and
# end-to-end), then every fuzzer for a bounded time (scripts/fuzz.sh, 15 s each;
# TALLY_FUZZ_SECONDS=N to change, 0 to skip).
# Usage: scripts/test.sh [ctest args, e.g. -R metrics -L integration]: with arguments only the
# selected tests run, no fuzzers. TALLY_TEST_EXCLUDE=REGEX leaves out the tests it matches
# (.ci/run runs the load test later, once nothing else shares the CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
exclude=()
if [ -n "${TALLY_TEST_EXCLUDE:-}" ]; then exclude=(-E "$TALLY_TEST_EXCLUDE"); fi
(cd build && ctest --output-on-failure --timeout 900 "${exclude[@]}" "$@")
seconds="${TALLY_FUZZ_SECONDS:-15}"
if [ $# -eq 0 ] && [ "$seconds" != 0 ]; then
  scripts/fuzz.sh --seconds "$seconds"
fi
