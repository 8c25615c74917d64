#!/usr/bin/env bash
# The test suite under AddressSanitizer (with LeakSanitizer) and UndefinedBehaviorSanitizer:
# installs what is missing, builds into ./build-asan (-DTALLY_SANITIZE=ON, -O1 -g1, no
# benchmarks) and runs the tests there.
# ./build-asan is a unity build (CMAKE_UNITY_BUILD, batches of 8 sources per compile): each batch
# parses the heavy headers (gtest, Boost.Beast, RocksDB, simdjson) once instead of once per source,
# which cuts the wall time of this build in CI. Only this build: the normal build (scripts/build.sh)
# keeps one source per translation unit, so benchmarks see the inlining of the real build. Sources
# that clash when batched (same names in anonymous namespaces) carry SKIP_UNITY_BUILD_INCLUSION in
# their CMakeLists.txt; a new clash shows as a redefinition or ambiguity error in this build only.
#   scripts/sanitize.sh [ctest args]   every test, unit and end-to-end (or those the args select,
#                                      e.g. -R Dedupe -L integration)
#   scripts/sanitize.sh --ci [args]    builds and runs only what CI runs: the unit tests and the
#                                      end-to-end tests labelled integration_sanitize
#                                      (tests/integration/CMakeLists.txt)
#   scripts/sanitize.sh [--ci] --build-only   builds, runs nothing
# With --ci, two tests run at a time. Any sanitizer report, from a test or from a tallyd / tally
# process a test started, fails the run; reports are kept in build-asan/sanitizer-reports/ and
# printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
ci=0
build_only=0
while [ $# -gt 0 ]; do
  case "$1" in
    --ci) ci=1; shift ;;
    --build-only) build_only=1; shift ;;
    *) break ;;
  esac
done
root="$PWD"
build=build-asan
scripts/install-deps.sh

cache=()
if command -v ccache >/dev/null 2>&1; then
  cache=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
targets=(all)
if [ "$ci" = 1 ]; then targets=(sanitize_subset); fi
echo "sanitize: configuring and building ${targets[*]} into ./$build (log: $build/build.log)..." >&2
mkdir -p "$build"
start=$(date +%s)
if ! { cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTALLY_SANITIZE=ON \
         -DTALLY_BUILD_BENCHMARKS=OFF "${cache[@]}" \
         -DCMAKE_UNITY_BUILD=ON -DCMAKE_UNITY_BUILD_BATCH_SIZE=8 \
         -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" \
         -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" &&
       cmake --build "$build" -j"$(nproc)" --target "${targets[@]}"; } >"$build/build.log" 2>&1; then
  tail -n 40 "$build/build.log" >&2
  echo "sanitize: build FAILED (full log: $build/build.log)" >&2
  exit 1
fi
echo "sanitize: built in $(($(date +%s) - start)) s" >&2
if [ "$build_only" = 1 ]; then exit 0; fi

reports="$root/$build/sanitizer-reports"
rm -rf "$reports"
mkdir -p "$reports"
# The end-to-end tests keep their temp dirs here (TALLY_IT_KEEP), so that the logs of the
# processes they start can be searched for UndefinedBehaviorSanitizer reports, which gcc's
# runtime writes to stderr even with log_path.
keep="$root/$build/test-tmp"
rm -rf "$keep"
mkdir -p "$keep"
export TMPDIR="$keep" TALLY_IT_KEEP=1
# Reports go to files (one per process), so those of child processes whose stderr a test
# discards are seen too. Leaks fail; tests/sanitizers/lsan.supp lists the known third-party ones.
export ASAN_OPTIONS="log_path=$reports/asan:detect_leaks=1:check_initialization_order=1:strict_init_order=1:detect_stack_use_after_return=1:abort_on_error=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:report_error_type=1"
export LSAN_OPTIONS="suppressions=$root/tests/sanitizers/lsan.supp:print_suppressions=0"

# CI runs two tests at a time: it runs this after the normal suite, on an otherwise idle machine,
# and most end-to-end tests spend their time waiting on the processes they started.
filter=()
if [ "$ci" = 1 ]; then filter=(-LE '^integration$' -E '_NOT_BUILT$' -j 2); fi
status=0
(cd "$build" && ctest --output-on-failure --timeout 1800 "${filter[@]}" "$@") || status=$?

grep -rlE --include='*.err' 'runtime error:|ERROR: (Address|Leak)Sanitizer' "$keep" |
  while read -r f; do cp "$f" "$reports/$(echo "${f#"$keep"/}" | tr / _)"; done || true
rm -rf "$keep"
if compgen -G "$reports/*" >/dev/null; then
  for f in "$reports"/*; do
    echo "==== $f" >&2
    cat "$f" >&2
  done
  echo "sanitize: FAILED: sanitizer reports in $reports (above)" >&2
  exit 1
fi
exit "$status"
