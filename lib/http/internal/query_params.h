#pragma once
// Reading query-string parameters the way the request parsers of tally::http all do. Internal to
// tally::http.

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

#include "http/router.h"

namespace tally::http::internal {

// Laravel's `string|max:255`: the longest identifier a request may carry (bytes).
inline constexpr size_t kMaxStringLength = 255;

// One parameter a parser reads, and the slot its value goes to.
struct QueryParam {
  std::string_view name;
  const std::string** value;
};

// Points each parameter's *value at the last value `query` gives its name, or null when the
// name is absent or its last value is empty (ConvertEmptyStringsToNull: a later empty value
// clears an earlier one). Names not listed are ignored. The pointers stay valid while `query`
// lives and is not modified.
inline void ReadQueryParams(const StringPairs& query, std::initializer_list<QueryParam> params) {
  for (const auto& [k, v] : query) {
    for (const QueryParam& p : params) {
      if (k == p.name) {
        *p.value = v.empty() ? nullptr : &v;
        break;
      }
    }
  }
}

// Laravel's `integer` rule on text: an optional sign, then digits only. Values beyond int64 clamp
// to INT64_MIN / INT64_MAX (so that a range check rejects them with its own message); nullopt
// when `s` is not an integer.
inline std::optional<int64_t> ParseIntegerRule(std::string_view s) {
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  if (s.empty()) return std::nullopt;
  int64_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ptr != s.data() + s.size()) return std::nullopt;
  if (ec == std::errc::result_out_of_range) return s.front() == '-' ? INT64_MIN : INT64_MAX;
  if (ec != std::errc()) return std::nullopt;
  return v;
}

}  // namespace tally::http::internal
