#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang (AddressSanitizer, UndefinedBehaviorSanitizer)
# into ./build-fuzz and runs each for a bounded time on its committed corpus plus what earlier
# runs found there.
#   scripts/fuzz.sh [--seconds N] [ctest args, e.g. -R http_params]   (default: 30 s per target)
# A crash fails the run; its input is left in build-fuzz/fuzz-artifacts/<target>-crash-*:
# replay it with build-fuzz/tests/fuzz/<target>_fuzz <file>, and add it to
# tests/fuzz/corpus/<target>/ with the fix, so the normal build's replay test keeps it fixed.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=30
if [ "${1:-}" = "--seconds" ]; then seconds="$2"; shift 2; fi
scripts/install-deps.sh clang-19 libclang-rt-19-dev
build=build-fuzz
mkdir -p "$build"
echo "fuzz: configuring and building the fuzz targets into ./$build (log: $build/build.log)..." >&2
start=$(date +%s)
if ! { cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
         -DCMAKE_C_COMPILER=clang-19 -DCMAKE_CXX_COMPILER=clang++-19 -DTALLY_FUZZ=ON \
         -DTALLY_FUZZ_SECONDS="$seconds" -DTALLY_BUILD_BENCHMARKS=OFF \
         -DTALLY_BUILD_INTEGRATION_TESTS=OFF \
         -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" \
         -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" &&
       cmake --build "$build" -j"$(nproc)" --target fuzz_targets; } >"$build/build.log" 2>&1; then
  tail -n 40 "$build/build.log" >&2
  echo "fuzz: build FAILED (full log: $build/build.log)" >&2
  exit 1
fi
echo "fuzz: built in $(($(date +%s) - start)) s; running each target for $seconds s" >&2
cd "$build"
ctest -L fuzz -j"$(nproc)" --output-on-failure "$@"
