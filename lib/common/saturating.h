#pragma once
// Saturating sums: every sum of event measures in tally (folds, merge operators, query totals)
// goes through these, so that no total ever wraps around or becomes infinite.
//
//   int64_t total = tally::SatAdd(a, b);     // INT64_MAX instead of wrapping to a negative
//   double cost = tally::SatAdd(x, y);       // the largest finite double instead of +inf
//   uint64_t n = tally::SaturatedSums();     // how many additions saturated so far
//
// Integer results are clamped to [INT64_MIN, INT64_MAX] (uint64_t ones to [0, INT64_MAX], so that
// they stay exact when read as int64_t); double results to [-DBL_MAX, DBL_MAX], and a NaN result
// (only from infinite inputs) becomes 0. Each clamped addition increments one process-wide
// counter (exposed in /metrics as tally_sum_saturated_total). Thread-safe; the non-saturating
// path is an overflow check and a branch, without allocation or atomic traffic.

#include <atomic>
#include <cfloat>
#include <cmath>
#include <cstdint>

namespace tally {

namespace internal {
extern std::atomic<uint64_t> g_saturated_sums;
// Out of line and cold: the counted path is exceptional.
[[gnu::cold, gnu::noinline]] void NoteSaturated();
}  // namespace internal

// Number of additions that saturated since the process started.
inline uint64_t SaturatedSums() {
  return internal::g_saturated_sums.load(std::memory_order_relaxed);
}

inline int64_t SatAdd(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) [[unlikely]] {
    internal::NoteSaturated();
    return b > 0 ? INT64_MAX : INT64_MIN;
  }
  return r;
}

inline uint64_t SatAdd(uint64_t a, uint64_t b) {
  constexpr uint64_t kMax = static_cast<uint64_t>(INT64_MAX);
  uint64_t r;
  if (__builtin_add_overflow(a, b, &r) || r > kMax) [[unlikely]] {
    internal::NoteSaturated();
    return kMax;
  }
  return r;
}

inline double SatAdd(double a, double b) {
  const double r = a + b;
  if (!std::isfinite(r)) [[unlikely]] {
    internal::NoteSaturated();
    if (std::isnan(r)) return 0;
    return r > 0 ? DBL_MAX : -DBL_MAX;
  }
  return r;
}

// *acc = SatAdd(*acc, v).
template <typename T>
inline void SatAddTo(T* acc, T v) {
  *acc = SatAdd(*acc, v);
}

}  // namespace tally
