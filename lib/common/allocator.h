#pragma once
// Which malloc serves the process: tallyd, tally and the benchmarks link jemalloc (RocksDB's
// recommended allocator; about 5-8 % less CPU per event than glibc's malloc on tally's write
// path) unless built with -DTALLY_JEMALLOC=OFF or under the sanitizers.
//
//   spdlog::info("allocator: {}", tally::AllocatorName());   // "jemalloc 5.3.0-0-g54eaed1..."
//
// Thread-safe.

#include <string>

namespace tally {

// "jemalloc <version>" when jemalloc is linked into the executable and serves malloc, else
// "glibc malloc".
std::string AllocatorName();

}  // namespace tally
