#include "query/internal/substring.h"

#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace tally::query::internal {

const char* FindSubstring(const char* begin, const char* end, std::string_view needle) {
  const size_t m = needle.size();
  if (m == 0) return begin;
  if (begin >= end || static_cast<size_t>(end - begin) < m) return nullptr;
  if (m == 1) return static_cast<const char*>(std::memchr(begin, needle[0], end - begin));
  const char* p = begin;
  // The last position a match can start at.
  const char* const last_start = end - m;
#if defined(__SSE2__)
  const __m128i first = _mm_set1_epi8(needle.front());
  const __m128i last = _mm_set1_epi8(needle.back());
  // Blocks of 16 start positions whose last bytes (start + m - 1 + 15) are inside the range.
  for (; p + 15 <= last_start; p += 16) {
    const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + m - 1));
    unsigned mask = static_cast<unsigned>(
        _mm_movemask_epi8(_mm_and_si128(_mm_cmpeq_epi8(a, first), _mm_cmpeq_epi8(b, last))));
    while (mask != 0) {
      const int bit = __builtin_ctz(mask);
      // The bytes between the first and the last: a loop, not memcmp, whose call costs more
      // than the few bytes of a search text.
      const char* s = p + bit + 1;
      size_t k = 0;
      while (k < m - 2 && s[k] == needle[k + 1]) ++k;
      if (k == m - 2) return p + bit;
      mask &= mask - 1;
    }
  }
#endif
  // The remaining start positions (all of them without SSE2).
  const void* hit = ::memmem(p, static_cast<size_t>(end - p), needle.data(), m);
  return static_cast<const char*>(hit);
}

}  // namespace tally::query::internal
