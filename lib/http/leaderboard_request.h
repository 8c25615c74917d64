#pragma once
// Parsing and validation of GET /api/agents/leaderboard (schemas/openapi.yaml)
// query parameters. Pure functions.
//
//   auto parsed = tally::http::ParseLeaderboardRequest(request.query);
//   if (!parsed) return tally::http::ValidationErrorResponse(parsed.error());  // Laravel 422
//   std::string ws = parsed->workspace_uuid.empty()
//                        ? resolve(parsed->organization_multiplai_id) : parsed->workspace_uuid;
//
// Parameters (an empty value counts as absent, as Laravel's ConvertEmptyStringsToNull does; a
// repeated scalar parameter: the last one wins, as PHP does):
//   workspace_uuid             string, at most 255 characters
//   organization_multiplai_id  string, at most 255 characters; used only when workspace_uuid is
//                              absent (workspace_uuid wins when both are given)
//   user_multiplai_ids         comma list and/or repeated: user_multiplai_ids=1,2,
//                              user_multiplai_ids=1&user_multiplai_ids=2, user_multiplai_ids[]=1,
//                              user_multiplai_ids[0]=1; blanks around ids are trimmed, empty
//                              items skipped, duplicates dropped; at most 1000 ids of at most 255
//                              characters each
//   limit                      integer 1..100, default 10
//   date_from, date_to         YYYY-MM-DD (a real calendar date), both or neither; date_to >=
//                              date_from; at most query::kLeaderboardMaxDays days. Neither: the
//                              30 days ending today (applied by the engine).
// Errors, in the order reported (field: message):
//   workspace_uuid: "The workspace uuid field is required when organization multiplai id is not
//                   present." / "... must not be greater than 255 characters."
//   organization_multiplai_id: "The organization multiplai id field must not be greater than 255
//                   characters."
//   user_multiplai_ids: "Each user multiplai id must not be greater than 255 characters." /
//                   "The user multiplai ids field must not have more than 1000 items."
//   limit: "The limit field must be an integer." / "The limit field must be between 1 and 100."
//   date_from, date_to: "The date from field must match the format Y-m-d." /
//                   "The date from field is required when date to is present." (and the mirror)
//   date_to: "The date to field must be a date after or equal to date from."
//   date_from: "The date range must not be longer than 3660 days."

#include <expected>
#include <string>

#include "http/error_mapping.h"
#include "http/router.h"
#include "query/leaderboard.h"

namespace tally::http {

inline constexpr size_t kLeaderboardMaxUserIds = 1000;

struct LeaderboardQuery {
  // Non-empty: the workspace. Empty: resolve organization_multiplai_id (then non-empty).
  std::string workspace_uuid;
  std::string organization_multiplai_id;
  // Everything else; request.workspace_id is workspace_uuid (empty until resolved).
  query::LeaderboardRequest request;
};

// The validated query, or every validation error (never an empty list). Thread-safe.
std::expected<LeaderboardQuery, FieldErrors> ParseLeaderboardRequest(const StringPairs& query);

}  // namespace tally::http
