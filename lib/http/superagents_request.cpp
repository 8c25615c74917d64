#include "http/superagents_request.h"

#include <charconv>
#include <optional>
#include <string_view>

#include "common/calendar.h"
#include "common/parse.h"
#include "http/internal/date_range_params.h"

namespace tally::http {
namespace {

std::optional<int64_t> AsInteger(std::string_view s) {
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  if (s.empty()) return std::nullopt;
  int64_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ptr != s.data() + s.size()) return std::nullopt;
  if (ec == std::errc::result_out_of_range) return s.front() == '-' ? INT64_MIN : INT64_MAX;
  if (ec != std::errc()) return std::nullopt;
  return v;
}

}  // namespace

std::expected<SuperagentsQuery, FieldErrors> ParseSuperagentsRequest(const StringPairs& query) {
  const std::string *limit = nullptr, *cursor = nullptr, *from_s = nullptr, *to_s = nullptr,
                    *sort = nullptr, *search = nullptr, *visibility = nullptr;
  auto set = [](const std::string** slot, const std::string& v) {
    *slot = v.empty() ? nullptr : &v;
  };
  for (const auto& [k, v] : query) {
    if (k == "limit") {
      set(&limit, v);
    } else if (k == "cursor") {
      set(&cursor, v);
    } else if (k == "from") {
      set(&from_s, v);
    } else if (k == "to") {
      set(&to_s, v);
    } else if (k == "sort") {
      set(&sort, v);
    } else if (k == "search") {
      set(&search, v);
    } else if (k == "visibility") {
      set(&visibility, v);
    }
  }

  SuperagentsQuery out;
  FieldErrors errors;
  auto fail = [&errors](std::string field, std::string message) {
    errors.push_back(FieldError{std::move(field), std::move(message)});
  };

  if (limit) {
    std::optional<int64_t> v = AsInteger(*limit);
    if (!v) {
      fail("limit", "The limit field must be an integer.");
    } else if (*v < 1 || *v > kSuperagentsMaxLimit) {
      fail("limit", "The limit field must be between 1 and 50.");
    } else {
      out.limit = static_cast<int>(*v);
    }
  }
  if (cursor) {
    if (cursor->size() > kSuperagentsMaxCursor) {
      fail("cursor", "The cursor field must not be greater than 1024 characters.");
    } else {
      out.cursor = *cursor;
    }
  }

  if (auto range = internal::ParseDateRangeParams("from", from_s, "to", to_s,
                                                  query::kSuperagentsMaxDays, &errors)) {
    out.request.from = range->first;
    out.request.to = range->second;
  }

  if (sort) {
    if (auto s = query::ParseSuperagentSort(*sort)) {
      out.request.sort = *s;
    } else {
      fail("sort", "The selected sort is invalid.");
    }
  }
  if (search) {
    const std::optional<size_t> chars = Utf8Length(*search);
    if (!chars) {
      fail("search", "The search field must be a valid UTF-8 string.");
    } else if (*chars > query::kSuperagentsMaxSearch) {
      fail("search", "The search field must not be greater than 100 characters.");
    } else {
      out.request.search = *search;
    }
  }
  if (visibility) {
    if (auto v = query::ParseVisibilityFilter(*visibility)) {
      out.request.visibility = *v;
    } else {
      fail("visibility", "The selected visibility is invalid.");
    }
  }

  if (!errors.empty()) return std::unexpected(std::move(errors));
  return out;
}

}  // namespace tally::http
