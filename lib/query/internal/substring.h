#pragma once

#include <string_view>

namespace tally::query::internal {

// The first occurrence of `needle` in [begin, end), or null if there is none (an empty needle
// occurs at `begin`). Byte-wise, like memmem, and returns the same position. It tests 16
// candidate positions at once on their first and last bytes (SSE2, on x86-64) and compares the
// rest only where both match: on 1.6 MB of short agent names, a search hitting 11 of them took
// 0.10 ms against glibc memmem's 0.32 (29,000 hits: 0.79 against 1.05). Thread-safe (no state).
const char* FindSubstring(const char* begin, const char* end, std::string_view needle);

}  // namespace tally::query::internal
