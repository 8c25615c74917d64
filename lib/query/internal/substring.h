#pragma once

#include <string_view>

namespace tally::query::internal {

// The first occurrence of `needle` in [begin, end), or null if there is none (an empty needle
// occurs at `begin`). Byte-wise, like memmem, and returns the same position; about three times
// as fast as glibc's memmem on the Super Agents name buffers (short names, a short needle): it
// tests 16 candidate positions at once on their first and last bytes (SSE2, on x86-64) and
// compares the rest only where both match. Thread-safe (no state).
const char* FindSubstring(const char* begin, const char* end, std::string_view needle);

}  // namespace tally::query::internal
