// Unit tests of the Super Agents listing (filter, order, rows) against a brute-force reference.
#include "query/internal/superagents_listing.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "query/internal/superagents_test_base.h"

namespace tally::query::internal {
namespace {

TEST_F(SuperagentsManyTest, EveryPathMatchesBruteForceReference) {
  // A few matches first (point reads, nothing cached but the table), then everything (whole-
  // table columns), then few again (served from the cached columns).
  Check(Req("-total_credits_consumed", "agent 27"), "few, cold");
  Check(Req("-total_credits_consumed"), "all");
  Check(Req("-total_credits_consumed", "BOT"), "many by name");
  Check(Req("-total_credits_consumed", "creator1"), "many by email");
  Check(Req("-total_credits_consumed", "agent 27"), "few, warm");
  Check(Req("-active_users_last_30d"), "by active users");
  Check(Req("superagent_name", "example"), "by name");
  Check(Req("superagent_name", "agent 27"), "few by name, columns cached");
  Check(Req("-total_credits_consumed", "BOT"), "many by name again (cached order)");
  Check(Req("-created_by_email"), "by email");
  SuperagentsRequest r = Req("-total_credits_consumed", "o");
  r.visibility = VisibilityFilter::kPublic;
  Check(r, "public");
  r = Req("total_credits_consumed");
  r.from = Day("2026-02-01");
  r.to = Day("2026-03-10");
  Check(r, "explicit range");
  r.search = "agent 1";
  Check(r, "explicit range, few");
}

}  // namespace
}  // namespace tally::query::internal
