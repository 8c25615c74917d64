#pragma once
// The engine behind GET /api/agents/leaderboard (schemas/openapi.yaml): workspace
// members ranked by the agents they created in a date range, against the previous period of the
// same length.
//
//   tally::query::LeaderboardRequest req;
//   req.workspace_id = "8360bf61-...";          // or ResolveWorkspaceByOrganization(store,
//   "org_7") req.from = *tally::ParseDay("2026-02-01");   // both or neither: default = 30 days to
//   today req.to = *tally::ParseDay("2026-02-28"); req.limit = 10;
//   tally::Result<tally::query::LeaderboardResult> r =
//       tally::query::RunLeaderboard(store, clock, req);
//   for (const tally::query::LeaderboardRow& row : r->rows) { ... }
//
// Semantics (docs/design.md "API semantics"):
//  - agent_count = number of agent.created events by the user in [from, to] (inclusive);
//    agent_count_previous_period = the same over the `to - from + 1` days just before `from`.
//  - Users listed: those with at least one agent created in either period (optionally restricted
//    to `user_ids`; ranks are then computed among the filtered users only).
//  - Order: agent_count descending, ties by user id ascending (byte order). Competition ranking:
//    a user's rank is 1 + the number of listed users with a strictly larger agent_count
//    (1, 1, 3). `limit` cuts the ranked list (ranks are those of the full list).
//  - growth_percentage = round((cur - prev) / prev * 100, 2), half away from zero; absent when
//    prev == 0.
//  - name / photo: the user's latest profile in the workspace; absent when never sent.
// Cost: one prefix scan per stored bucket of DecomposeRange for both periods (or point reads per
// filtered user), plus one profile read per returned row.
//
// Thread-safe: any number of concurrent calls on one Store.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/calendar.h"
#include "common/clock.h"
#include "common/result.h"

namespace tally::store {
class Store;
}

namespace tally::query {

// The longest accepted range, in days (ten years and change): bounds the work of one request.
inline constexpr int32_t kLeaderboardMaxDays = 3660;

struct LeaderboardRequest {
  std::string workspace_id;
  // Inclusive range. Both set, or both unset (= the 30 days ending today).
  std::optional<DayNumber> from;
  std::optional<DayNumber> to;
  int limit = 10;                     // 1..100
  std::vector<std::string> user_ids;  // empty = every user; unknown ids are simply not listed
};

struct LeaderboardRow {
  int64_t rank = 0;
  std::string user_id;
  std::optional<std::string> name;   // latest profile name; nullopt when unknown
  std::optional<std::string> photo;  // latest profile photo; nullopt when unknown
  int64_t agent_count = 0;
  int64_t agent_count_previous_period = 0;
  std::optional<double> growth_percentage;  // nullopt when the previous count is 0
};

struct LeaderboardResult {
  std::vector<LeaderboardRow> rows;  // ranked, at most `limit`
  DayNumber from = 0;                // the range actually used (defaults applied)
  DayNumber to = 0;
  DayNumber previous_from = 0;  // the previous period
  DayNumber previous_to = 0;
};

// kInvalidArgument (with `field`) when only one of from/to is set ("date_to" / "date_from"),
// from > to ("date_to"), the range is longer than kLeaderboardMaxDays ("date_from") or limit
// is outside 1..100 ("limit"). An unknown workspace gives an empty result (the caller decides
// whether that is a 404).
Result<LeaderboardResult> RunLeaderboard(const store::Store& store, const Clock& clock,
                                         const LeaderboardRequest& request);

// The workspace whose events name `organization` (the latest organization_id seen for each
// workspace). kNotFound "Workspace not found" when none does; kInvalidArgument with field
// "organization_multiplai_id" when several do (the caller must pass workspace_uuid). Scans the
// workspace rows (one per workspace). Thread-safe.
Result<std::string> ResolveWorkspaceByOrganization(const store::Store& store,
                                                   std::string_view organization);

// round(x, 2) of growth (cur - prev) / prev * 100, half away from zero, computed in integers so
// that e.g. 1/8 -> 12.5 and 2/3 -> 66.67 exactly as a decimal rounding would. prev must be > 0.
double GrowthPercentage(int64_t current, int64_t previous);

}  // namespace tally::query
