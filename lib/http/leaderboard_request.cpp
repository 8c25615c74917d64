#include "http/leaderboard_request.h"

#include <optional>
#include <string_view>
#include <unordered_set>

#include "common/calendar.h"
#include "common/strings.h"
#include "http/internal/date_range_params.h"
#include "http/internal/query_params.h"

namespace tally::http {
namespace {

// user_multiplai_ids, user_multiplai_ids[] and user_multiplai_ids[<anything>] (PHP arrays).
bool IsUserIdsKey(std::string_view k) {
  constexpr std::string_view kName = "user_multiplai_ids";
  if (!k.starts_with(kName)) return false;
  k.remove_prefix(kName.size());
  return k.empty() || (k.front() == '[' && k.back() == ']');
}

}  // namespace

std::expected<LeaderboardQuery, FieldErrors> ParseLeaderboardRequest(const StringPairs& query) {
  // Null = absent. Pointers into `query` rather than optionals: fewer copies, and g++ 12 warns
  // spuriously about optional<string_view> here.
  const std::string *workspace = nullptr, *organization = nullptr, *limit = nullptr,
                    *date_from = nullptr, *date_to = nullptr;
  std::vector<std::string_view> user_values;
  internal::ReadQueryParams(query, {{"workspace_uuid", &workspace},
                                    {"organization_multiplai_id", &organization},
                                    {"limit", &limit},
                                    {"date_from", &date_from},
                                    {"date_to", &date_to}});
  for (const auto& [k, v] : query) {
    if (IsUserIdsKey(k)) user_values.push_back(v);
  }

  LeaderboardQuery out;
  FieldErrors errors;
  auto fail = [&errors](std::string field, std::string message) {
    errors.push_back(FieldError{std::move(field), std::move(message)});
  };

  if (workspace && workspace->size() > internal::kMaxStringLength) {
    fail("workspace_uuid", "The workspace uuid field must not be greater than 255 characters.");
  } else if (workspace) {
    out.workspace_uuid.assign(*workspace);
  }
  if (organization && organization->size() > internal::kMaxStringLength) {
    fail("organization_multiplai_id",
         "The organization multiplai id field must not be greater than 255 characters.");
  } else if (organization) {
    out.organization_multiplai_id.assign(*organization);
  }
  if (!workspace && !organization) {
    fail("workspace_uuid",
         "The workspace uuid field is required when organization multiplai id is not present.");
  }

  // user_multiplai_ids
  {
    std::unordered_set<std::string_view> seen;
    bool too_long = false;
    for (std::string_view value : user_values) {
      while (!value.empty()) {
        size_t comma = value.find(',');
        std::string_view item = TrimBlanks(value.substr(0, comma));
        value = comma == std::string_view::npos ? std::string_view() : value.substr(comma + 1);
        if (item.empty()) continue;
        if (item.size() > internal::kMaxStringLength) {
          too_long = true;
          continue;
        }
        if (seen.insert(item).second) out.request.user_ids.emplace_back(item);
      }
    }
    if (too_long) {
      fail("user_multiplai_ids", "Each user multiplai id must not be greater than 255 characters.");
    } else if (out.request.user_ids.size() > kLeaderboardMaxUserIds) {
      fail("user_multiplai_ids", "The user multiplai ids field must not have more than " +
                                     std::to_string(kLeaderboardMaxUserIds) + " items.");
    }
  }

  // limit
  if (limit) {
    std::optional<int64_t> v = internal::ParseIntegerRule(*limit);
    if (!v) {
      fail("limit", "The limit field must be an integer.");
    } else if (*v < 1 || *v > 100) {
      fail("limit", "The limit field must be between 1 and 100.");
    } else {
      out.request.limit = static_cast<int>(*v);
    }
  }

  if (auto range = internal::ParseDateRangeParams("date_from", date_from, "date_to", date_to,
                                                  query::kLeaderboardMaxDays, &errors)) {
    out.request.from = range->first;
    out.request.to = range->second;
  }

  if (!errors.empty()) return std::unexpected(std::move(errors));
  out.request.workspace_id = out.workspace_uuid;
  return out;
}

}  // namespace tally::http
