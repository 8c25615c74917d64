// Unit tests of the leaderboard engine on hand-computed expectations.
#include "query/leaderboard.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "aggregate/aggregator.h"
#include "query/internal/views_test_base.h"
#include "store/store.h"

namespace tally::query {
namespace {

using event::Action;
using event::EntityKind;
using event::UsageEvent;

DayNumber Day(const char* text) { return *ParseDay(text); }

class LeaderboardTest : public internal::ViewsTestBase {
 protected:
  // One event at 01:00 UTC of `day`.
  UsageEvent Ev(const char* day, std::string user, Action action = Action::kCreated,
                std::string ws = "ws", EntityKind kind = EntityKind::kAgent) {
    UsageEvent e;
    e.id = std::to_string(++next_id_);
    e.source = "test";
    e.kind = kind;
    e.action = action;
    e.time_ms = int64_t{Day(day)} * 86'400'000 + 3'600'000;
    e.workspace_id = std::move(ws);
    e.user_id = std::move(user);
    e.entity_id = "ent" + e.id;
    return e;
  }

  // `n` agent.created events of `user` on `day`.
  void Created(int n, const char* day, const std::string& user) {
    std::vector<UsageEvent> evs;
    for (int i = 0; i < n; ++i) evs.push_back(Ev(day, user));
    Apply(evs);
  }

  LeaderboardResult Run(const LeaderboardRequest& r) {
    auto res = RunLeaderboard(*store_, clock_, r);
    EXPECT_TRUE(res.has_value()) << res.error().message;
    return res.value_or(LeaderboardResult{});
  }

  LeaderboardRequest Range(const char* from, const char* to) {
    LeaderboardRequest r;
    r.workspace_id = "ws";
    r.from = Day(from);
    r.to = Day(to);
    return r;
  }

  int next_id_ = 0;
  // Today = Sunday 2026-03-01.
  Clock clock_ = Clock::Fixed(int64_t{Day("2026-03-01")} * 86'400'000 + 5'000);
};

TEST(GrowthPercentage, RoundsToTwoDecimalsHalfAwayFromZero) {
  EXPECT_EQ(GrowthPercentage(15, 10), 50);
  EXPECT_EQ(GrowthPercentage(10, 10), 0);
  EXPECT_EQ(GrowthPercentage(0, 4), -100);
  EXPECT_EQ(GrowthPercentage(9, 8), 12.5);
  EXPECT_EQ(GrowthPercentage(5, 3), 66.67);          // 66.666...
  EXPECT_EQ(GrowthPercentage(1, 3), -66.67);         // -66.666...
  EXPECT_EQ(GrowthPercentage(2, 3), -33.33);         // -33.333...
  EXPECT_EQ(GrowthPercentage(30001, 20000), 50.01);  // 50.005 -> 50.01 (half away from zero)
  EXPECT_EQ(GrowthPercentage(9999, 20000), -50.01);  // -50.005 -> -50.01
  EXPECT_EQ(GrowthPercentage(7, 1), 600);
}

TEST_F(LeaderboardTest, CountsGrowthTiesAndPreviousPeriod) {
  // Range 2026-02-01..2026-02-28 (28 days); previous period 2026-01-04..2026-01-31.
  Created(3, "2026-02-01", "alice");
  Created(2, "2026-02-28", "alice");  // alice: 5 now
  Created(2, "2026-01-31", "alice");  // alice: 2 before -> +150%
  Created(5, "2026-02-14", "bob");    // bob: 5 now, 0 before -> null
  Created(4, "2026-02-10", "carol");
  Created(3, "2026-01-04", "carol");  // carol: 4 now, 3 before -> 33.33
  Created(3, "2026-01-03", "carol");  // day before the previous period: not counted
  Created(1, "2026-03-01", "carol");  // after the range: not counted
  Created(2, "2026-01-20", "dave");   // dave: 0 now, 2 before -> -100, still listed
  // Other actions, kinds and workspaces do not count.
  Apply({Ev("2026-02-05", "erin", Action::kExecuted), Ev("2026-02-05", "erin", Action::kCopied),
         Ev("2026-02-05", "erin", Action::kCreated, "ws", EntityKind::kWorkflow),
         Ev("2026-02-05", "erin", Action::kCreated, "other-ws")});

  LeaderboardResult res = Run(Range("2026-02-01", "2026-02-28"));
  EXPECT_EQ(FormatDay(res.from), "2026-02-01");
  EXPECT_EQ(FormatDay(res.to), "2026-02-28");
  EXPECT_EQ(FormatDay(res.previous_from), "2026-01-04");
  EXPECT_EQ(FormatDay(res.previous_to), "2026-01-31");
  ASSERT_EQ(res.rows.size(), 4u);
  // alice and bob tie at 5: both rank 1, ordered by user id; carol is 3rd (competition rank).
  EXPECT_EQ(res.rows[0].user_id, "alice");
  EXPECT_EQ(res.rows[0].rank, 1);
  EXPECT_EQ(res.rows[0].agent_count, 5);
  EXPECT_EQ(res.rows[0].agent_count_previous_period, 2);
  EXPECT_EQ(res.rows[0].growth_percentage, std::optional<double>(150));
  EXPECT_EQ(res.rows[1].user_id, "bob");
  EXPECT_EQ(res.rows[1].rank, 1);
  EXPECT_EQ(res.rows[1].agent_count, 5);
  EXPECT_EQ(res.rows[1].agent_count_previous_period, 0);
  EXPECT_FALSE(res.rows[1].growth_percentage.has_value());
  EXPECT_EQ(res.rows[2].user_id, "carol");
  EXPECT_EQ(res.rows[2].rank, 3);
  EXPECT_EQ(res.rows[2].agent_count, 4);
  EXPECT_EQ(res.rows[2].agent_count_previous_period, 3);
  EXPECT_EQ(res.rows[2].growth_percentage, std::optional<double>(33.33));
  EXPECT_EQ(res.rows[3].user_id, "dave");
  EXPECT_EQ(res.rows[3].rank, 4);
  EXPECT_EQ(res.rows[3].agent_count, 0);
  EXPECT_EQ(res.rows[3].agent_count_previous_period, 2);
  EXPECT_EQ(res.rows[3].growth_percentage, std::optional<double>(-100));
}

TEST_F(LeaderboardTest, LimitCutsAfterRankingAndTiesCompeteOnUserId) {
  Created(2, "2026-02-10", "zed");
  Created(2, "2026-02-10", "amy");
  Created(2, "2026-02-10", "max");
  Created(3, "2026-02-10", "top");
  LeaderboardRequest r = Range("2026-02-01", "2026-02-28");
  r.limit = 2;
  LeaderboardResult res = Run(r);
  ASSERT_EQ(res.rows.size(), 2u);
  EXPECT_EQ(res.rows[0].user_id, "top");
  EXPECT_EQ(res.rows[0].rank, 1);
  EXPECT_EQ(res.rows[1].user_id, "amy");  // the three tied at 2: smallest id makes the cut
  EXPECT_EQ(res.rows[1].rank, 2);
  r.limit = 4;
  res = Run(r);
  ASSERT_EQ(res.rows.size(), 4u);
  EXPECT_EQ(res.rows[2].user_id, "max");
  EXPECT_EQ(res.rows[2].rank, 2);
  EXPECT_EQ(res.rows[3].user_id, "zed");
  EXPECT_EQ(res.rows[3].rank, 2);
}

TEST_F(LeaderboardTest, UserFilterRanksAmongFilteredUsers) {
  Created(5, "2026-02-10", "u1");
  Created(3, "2026-02-10", "u2");
  Created(3, "2026-02-10", "u3");
  Created(1, "2026-01-10", "u4");  // previous period only
  LeaderboardRequest r = Range("2026-02-01", "2026-02-28");
  r.user_ids = {"u3", "u4", "nobody", "u2", "u3"};  // unknown and repeated ids are harmless
  LeaderboardResult res = Run(r);
  ASSERT_EQ(res.rows.size(), 3u);
  EXPECT_EQ(res.rows[0].user_id, "u2");
  EXPECT_EQ(res.rows[0].rank, 1);  // u1 is filtered out, so u2 and u3 share rank 1
  EXPECT_EQ(res.rows[1].user_id, "u3");
  EXPECT_EQ(res.rows[1].rank, 1);
  EXPECT_EQ(res.rows[2].user_id, "u4");
  EXPECT_EQ(res.rows[2].rank, 3);
  EXPECT_EQ(res.rows[2].agent_count, 0);
  EXPECT_EQ(res.rows[2].agent_count_previous_period, 1);
  EXPECT_EQ(res.rows[2].growth_percentage, std::optional<double>(-100));
}

TEST_F(LeaderboardTest, UserWithOnlyOtherEventsIsNotListed) {
  Apply({Ev("2026-02-10", "runner", Action::kExecuted)});
  Created(1, "2026-02-10", "maker");
  LeaderboardRequest r = Range("2026-02-01", "2026-02-28");
  LeaderboardResult res = Run(r);
  ASSERT_EQ(res.rows.size(), 1u);
  EXPECT_EQ(res.rows[0].user_id, "maker");
  r.user_ids = {"runner"};
  EXPECT_TRUE(Run(r).rows.empty());
}

TEST_F(LeaderboardTest, DefaultRangeIsThirtyDaysEndingToday) {
  Created(1, "2026-03-01", "a");   // today
  Created(2, "2026-01-31", "a");   // first day of the default range
  Created(4, "2026-01-30", "a");   // last day of the previous period
  Created(8, "2026-01-01", "a");   // first day of the previous period
  Created(16, "2025-12-31", "a");  // before both
  LeaderboardRequest r;
  r.workspace_id = "ws";
  LeaderboardResult res = Run(r);
  EXPECT_EQ(FormatDay(res.from), "2026-01-31");
  EXPECT_EQ(FormatDay(res.to), "2026-03-01");
  EXPECT_EQ(FormatDay(res.previous_from), "2026-01-01");
  EXPECT_EQ(FormatDay(res.previous_to), "2026-01-30");
  ASSERT_EQ(res.rows.size(), 1u);
  EXPECT_EQ(res.rows[0].agent_count, 3);
  EXPECT_EQ(res.rows[0].agent_count_previous_period, 12);
  EXPECT_EQ(res.rows[0].growth_percentage, std::optional<double>(-75));
}

TEST_F(LeaderboardTest, SingleDayRangeAndLongRangesAcrossMonths) {
  Created(1, "2026-02-10", "a");
  Created(2, "2026-02-09", "a");
  LeaderboardResult res = Run(Range("2026-02-10", "2026-02-10"));
  ASSERT_EQ(res.rows.size(), 1u);
  EXPECT_EQ(res.rows[0].agent_count, 1);
  EXPECT_EQ(res.rows[0].agent_count_previous_period, 2);
  EXPECT_EQ(res.rows[0].growth_percentage, std::optional<double>(-50));
  // A year: the previous period is the year before (months and weeks are read whole).
  Created(4, "2025-02-10", "a");
  res = Run(Range("2025-03-01", "2026-02-28"));  // 365 days; previous 2024-03-01..2025-02-28
  ASSERT_EQ(res.rows.size(), 1u);
  EXPECT_EQ(res.rows[0].agent_count, 3);
  EXPECT_EQ(res.rows[0].agent_count_previous_period, 4);
  EXPECT_EQ(res.rows[0].growth_percentage, std::optional<double>(-25));
}

TEST_F(LeaderboardTest, LatestProfileGivesNameAndPhoto) {
  UsageEvent early = Ev("2026-02-01", "u1");
  early.user_name = "Old Name";
  early.user_photo = "https://example.com/old.jpg";
  UsageEvent late = Ev("2026-02-20", "u1", Action::kExecuted);
  late.user_name = "Jane Smith";
  late.user_photo = "https://example.com/u/42.jpg";
  UsageEvent nameless = Ev("2026-02-02", "u2");
  Apply({late});
  Apply({early, nameless});  // arrives later, but is older: the latest profile still wins
  LeaderboardResult res = Run(Range("2026-02-01", "2026-02-28"));
  ASSERT_EQ(res.rows.size(), 2u);
  EXPECT_EQ(res.rows[0].user_id, "u1");
  EXPECT_EQ(res.rows[0].name, std::optional<std::string>("Jane Smith"));
  EXPECT_EQ(res.rows[0].photo, std::optional<std::string>("https://example.com/u/42.jpg"));
  EXPECT_EQ(res.rows[1].user_id, "u2");
  EXPECT_FALSE(res.rows[1].name.has_value());
  EXPECT_FALSE(res.rows[1].photo.has_value());
}

TEST_F(LeaderboardTest, UnknownWorkspaceIsEmpty) {
  Created(1, "2026-02-10", "a");
  LeaderboardRequest r = Range("2026-02-01", "2026-02-28");
  r.workspace_id = "nope";
  EXPECT_TRUE(Run(r).rows.empty());
}

TEST_F(LeaderboardTest, RefusesInvalidRequests) {
  auto field_of = [&](const LeaderboardRequest& r) {
    auto res = RunLeaderboard(*store_, clock_, r);
    EXPECT_FALSE(res.has_value());
    if (res) return std::string();
    EXPECT_EQ(res.error().code, ErrorCode::kInvalidArgument);
    return res.error().field;
  };
  LeaderboardRequest r;
  r.workspace_id = "ws";
  r.from = Day("2026-02-01");
  EXPECT_EQ(field_of(r), "date_to");
  r.from.reset();
  r.to = Day("2026-02-01");
  EXPECT_EQ(field_of(r), "date_from");
  r = Range("2026-02-02", "2026-02-01");
  EXPECT_EQ(field_of(r), "date_to");
  r = Range("2000-01-01", "2026-02-01");
  EXPECT_EQ(field_of(r), "date_from");
  r = Range("2026-02-01", "2026-02-01");
  r.limit = 0;
  EXPECT_EQ(field_of(r), "limit");
  r.limit = 101;
  EXPECT_EQ(field_of(r), "limit");
}

TEST_F(LeaderboardTest, ResolvesWorkspaceByOrganization) {
  UsageEvent a = Ev("2026-02-01", "u", Action::kCreated, "ws-a");
  a.organization_id = "org_1";
  UsageEvent b1 = Ev("2026-02-01", "u", Action::kCreated, "ws-b1");
  b1.organization_id = "org_2";
  UsageEvent b2 = Ev("2026-02-01", "u", Action::kCreated, "ws-b2");
  b2.organization_id = "org_2";
  UsageEvent c = Ev("2026-02-01", "u", Action::kCreated, "ws-c");  // no organization
  Apply({a, b1, b2, c});

  auto unique = ResolveWorkspaceByOrganization(*store_, "org_1");
  ASSERT_TRUE(unique.has_value()) << unique.error().message;
  EXPECT_EQ(*unique, "ws-a");

  auto ambiguous = ResolveWorkspaceByOrganization(*store_, "org_2");
  ASSERT_FALSE(ambiguous.has_value());
  EXPECT_EQ(ambiguous.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(ambiguous.error().field, "organization_multiplai_id");

  for (const char* org : {"org_3", "", "org_"}) {
    auto none = ResolveWorkspaceByOrganization(*store_, org);
    ASSERT_FALSE(none.has_value()) << org;
    EXPECT_EQ(none.error().code, ErrorCode::kNotFound);
    EXPECT_EQ(none.error().message, "Workspace not found");
  }

  // A workspace belongs to one organization: a later event naming another one is refused, so
  // the workspace does not move.
  UsageEvent moved = Ev("2026-02-05", "u", Action::kExecuted, "ws-b2");
  moved.organization_id = "org_9";
  Apply({moved});
  EXPECT_FALSE(ResolveWorkspaceByOrganization(*store_, "org_2").has_value());
  auto none = ResolveWorkspaceByOrganization(*store_, "org_9");
  ASSERT_FALSE(none.has_value());
  EXPECT_EQ(none.error().code, ErrorCode::kNotFound);
}

}  // namespace
}  // namespace tally::query
