#!/usr/bin/env bash
# The unit tests of the components that run threads of their own (the store's readers against
# its writer, the aggregator's background writer, the replayer's reader / apply / writer threads,
# the batch pipeline, BackgroundTask) under ThreadSanitizer. Not part of CI (RocksDB and
# librdkafka are not instrumented, so only tally's own data races show); run it after touching
# any of those threads.
#   scripts/tsan.sh            builds ./build-tsan and runs the tests
# Any ThreadSanitizer report fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
build=build-tsan
tests=(store_test aggregate_test replay_test pipeline_test common_test)
echo "tsan: building ${tests[*]} into ./$build (log: $build/build.log)..." >&2
mkdir -p "$build"
if ! { cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTALLY_JEMALLOC=OFF \
         -DTALLY_BUILD_BENCHMARKS=OFF -DTALLY_BUILD_INTEGRATION_TESTS=OFF \
         -DCMAKE_C_FLAGS=-fsanitize=thread -DCMAKE_CXX_FLAGS=-fsanitize=thread \
         -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread &&
       cmake --build "$build" -j"$(nproc)" --target "${tests[@]}"; } >"$build/build.log" 2>&1; then
  tail -n 40 "$build/build.log" >&2
  echo "tsan: build FAILED (full log: $build/build.log)" >&2
  exit 1
fi
# tests/sanitizers/tsan.supp: races reported inside RocksDB, which is not instrumented.
supp="$PWD/tests/sanitizers/tsan.supp"
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$supp"
status=0
for t in "${tests[@]}"; do
  bin=$(find "$build/lib" -type f -name "$t" -perm -u+x | head -n 1)
  if "$bin" >"$build/$t.log" 2>&1; then
    echo "tsan: $t passed" >&2
  else
    echo "tsan: $t FAILED (log: $build/$t.log)" >&2
    tail -n 60 "$build/$t.log" >&2
    status=1
  fi
done
exit "$status"
