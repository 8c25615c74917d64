#include "http/superagents_request.h"

#include <optional>
#include <string_view>

#include "common/calendar.h"
#include "common/parse.h"
#include "http/internal/date_range_params.h"
#include "http/internal/query_params.h"

namespace tally::http {
std::expected<SuperagentsQuery, FieldErrors> ParseSuperagentsRequest(const StringPairs& query) {
  const std::string *limit = nullptr, *cursor = nullptr, *from_s = nullptr, *to_s = nullptr,
                    *sort = nullptr, *search = nullptr, *visibility = nullptr;
  internal::ReadQueryParams(query, {{"limit", &limit},
                                    {"cursor", &cursor},
                                    {"from", &from_s},
                                    {"to", &to_s},
                                    {"sort", &sort},
                                    {"search", &search},
                                    {"visibility", &visibility}});

  SuperagentsQuery out;
  FieldErrors errors;
  auto fail = [&errors](std::string field, std::string message) {
    errors.push_back(FieldError{std::move(field), std::move(message)});
  };

  if (limit) {
    std::optional<int64_t> v = internal::ParseIntegerRule(*limit);
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
