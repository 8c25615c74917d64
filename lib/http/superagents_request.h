#pragma once
// Parsing and validation of GET /api/v1/monitoring/{workspace_id}/superagents
// (schemas/openapi.yaml) query parameters. Pure functions.
//
//   auto parsed = tally::http::ParseSuperagentsRequest(request.query);
//   if (!parsed) return tally::http::ValidationErrorResponse(parsed.error());  // 422
//   parsed->request.workspace_id = workspace_from_path;
//
// Parameters (an empty value counts as absent; a repeated parameter: the last one wins):
//   limit       integer 1..50, default 50
//   cursor      opaque string from a previous page's pagination.next_cursor (checked by the
//               handler, not here); at most 1024 characters
//   from, to    YYYY-MM-DD, both or neither; to >= from; at most query::kSuperagentsMaxDays days.
//               Neither: first day of the current UTC month .. today (applied by the engine).
//   sort        one of the 8 documented fields, "-" prefix = descending; default
//               "-total_credits_consumed"
//   search      well-formed UTF-8, at most 100 characters (code points, not bytes)
//   visibility  private | workspace | public_with_login | public_without_login | public
// Errors (field: message):
//   limit: "The limit field must be an integer." / "The limit field must be between 1 and 50."
//   cursor: "The cursor field must not be greater than 1024 characters."
//   from, to: "The from field must match the format Y-m-d." / "The from field is required when
//             to is present." (and the mirror)
//   to: "The to field must be a date after or equal to from."
//   from: "The date range must not be longer than 3660 days."
//   sort: "The selected sort is invalid."
//   search: "The search field must be a valid UTF-8 string." / "The search field must not be
//           greater than 100 characters."
//   visibility: "The selected visibility is invalid."

#include <expected>
#include <string>

#include "http/error_mapping.h"
#include "http/router.h"
#include "query/superagents.h"

namespace tally::http {

inline constexpr int kSuperagentsMaxLimit = 50;
inline constexpr size_t kSuperagentsMaxCursor = 1024;

struct SuperagentsQuery {
  int limit = kSuperagentsMaxLimit;
  std::string cursor;  // empty = first page
  // Everything else; request.workspace_id is left empty (it comes from the path).
  query::SuperagentsRequest request;
};

// The validated query, or every validation error (never an empty list). Thread-safe.
std::expected<SuperagentsQuery, FieldErrors> ParseSuperagentsRequest(const StringPairs& query);

}  // namespace tally::http
