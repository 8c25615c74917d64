// Unit tests of the Super Agent inventory engine on hand-computed expectations.
#include "query/superagents.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <set>
#include <thread>

#include "aggregate/aggregator.h"
#include "query/internal/views_test_base.h"
#include "query/testing/superagents_testing.h"
#include "store/store.h"
#include "store/testing/store_testing.h"

namespace tally::query {
namespace {

using event::Action;
using event::EntityKind;
using event::UsageEvent;

DayNumber Day(const char* text) { return *ParseDay(text); }
int64_t At(const char* day) { return int64_t{Day(day)} * 86'400'000 + 3'600'000; }

class SuperagentsTest : public internal::ViewsTestBase {
 protected:
  void SetUp() override {
    ViewsTestBase::SetUp();
    Load();
  }

  // One event at 01:00 UTC of `day` on agent `agent`.
  UsageEvent Ev(const char* day, const char* user, Action action, const char* agent,
                std::string ws = "ws", EntityKind kind = EntityKind::kAgent) {
    UsageEvent e;
    e.id = std::to_string(++next_id_);
    e.source = "test";
    e.kind = kind;
    e.action = action;
    e.time_ms = At(day);
    e.workspace_id = std::move(ws);
    e.user_id = user;
    e.entity_id = agent;
    return e;
  }
  UsageEvent Exec(const char* day, const char* user, const char* agent, double msg, double integ) {
    UsageEvent e = Ev(day, user, Action::kExecuted, agent);
    e.message_credits = msg;
    e.integration_credits = integ;
    return e;
  }

  // Today = 2026-03-15: default credit range 2026-03-01..03-15, last 30 days 02-14..03-15.
  void Load() {
    std::vector<UsageEvent> evs;
    // a1: alice, "Support Agent", workspace.
    UsageEvent e = Ev("2026-02-01", "alice", Action::kCreated, "a1");
    e.entity_name = "Support Agent";
    e.entity_visibility = "workspace";
    e.user_email = "Alice@Corp.com";
    evs.push_back(e);
    evs.push_back(Exec("2026-03-02", "u1", "a1", 10, 2));
    evs.push_back(Exec("2026-03-10", "u2", "a1", 5, 0));
    evs.push_back(Exec("2026-02-20", "u1", "a1", 100, 0));  // in the 30 days, not in March
    evs.push_back(Exec("2026-02-10", "u3", "a1", 7, 0));    // outside both
    // a2: bob (no email), owner carol, "billing bot", public_with_login.
    e = Ev("2026-03-01", "bob", Action::kCreated, "a2");
    e.entity_name = "billing bot";
    e.entity_visibility = "public_with_login";
    e.entity_owner_user_id = "carol";
    evs.push_back(e);
    evs.push_back(Exec("2026-03-05", "u4", "a2", 20, 10));
    // a3: deleted.
    evs.push_back(Ev("2026-02-05", "alice", Action::kCreated, "a3"));
    evs.push_back(Ev("2026-02-06", "alice", Action::kDeleted, "a3"));
    // a4: bob; created, deleted, copied back; renamed Zeta -> Alpha; public_without_login.
    e = Ev("2026-02-01", "bob", Action::kCreated, "a4");
    e.entity_name = "Zeta";
    e.entity_visibility = "public_without_login";
    evs.push_back(e);
    evs.push_back(Ev("2026-02-03", "bob", Action::kDeleted, "a4"));
    evs.push_back(Ev("2026-02-04", "bob", Action::kCopied, "a4"));
    e = Ev("2026-02-07", "bob", Action::kExecuted, "a4");
    e.entity_name = "Alpha";
    evs.push_back(e);
    // Not listed: a workflow, another workspace's agent, an agent never created.
    evs.push_back(Ev("2026-03-01", "alice", Action::kCreated, "w1", "ws", EntityKind::kWorkflow));
    evs.push_back(Ev("2026-03-01", "alice", Action::kCreated, "x1", "other"));
    evs.push_back(Exec("2026-03-03", "u1", "a6", 1, 1));
    Apply(evs);
  }

  SuperagentsResult Run(SuperagentsRequest r) {
    r.workspace_id = "ws";
    auto res = ListSuperagents(*store_, cache_, clock_, r);
    EXPECT_TRUE(res.has_value()) << res.error().message;
    return res.value_or(SuperagentsResult{});
  }
  static std::vector<std::string> Ids(const SuperagentsResult& r) {
    std::vector<std::string> ids;
    for (const auto& row : r.rows) ids.push_back(row.superagent_id);
    return ids;
  }
  SuperagentsRequest Sorted(const char* sort) {
    SuperagentsRequest r;
    r.sort = *ParseSuperagentSort(sort);
    return r;
  }

  int next_id_ = 0;
  Clock clock_ = Clock::Fixed(At("2026-03-15") + 5'000);
  SuperagentsCache cache_;
};

using IdList = std::vector<std::string>;

TEST_F(SuperagentsTest, DefaultListRowsAndOrder) {
  SuperagentsResult res = Run({});
  EXPECT_EQ(FormatDay(res.from), "2026-03-01");
  EXPECT_EQ(FormatDay(res.to), "2026-03-15");
  ASSERT_EQ(Ids(res), (IdList{"a2", "a1", "a4"}));  // -total_credits_consumed: 30, 17, 0
  const SuperagentRow& a2 = res.rows[0];
  EXPECT_EQ(a2.superagent_name, std::optional<std::string>("billing bot"));
  EXPECT_EQ(a2.active_users_last_30d, 1);
  EXPECT_EQ(a2.message_credits_consumed, 20);
  EXPECT_EQ(a2.integration_credits_consumed, 10);
  EXPECT_EQ(a2.total_credits_consumed, 30);
  EXPECT_EQ(a2.owner_user_id, "carol");
  EXPECT_FALSE(a2.created_by_email.has_value());
  EXPECT_EQ(a2.created_at_ms, At("2026-03-01"));
  const SuperagentRow& a1 = res.rows[1];
  EXPECT_EQ(a1.superagent_name, std::optional<std::string>("Support Agent"));
  EXPECT_EQ(a1.active_users_last_30d, 2);  // u1, u2 (u3 is older than 30 days)
  EXPECT_EQ(a1.message_credits_consumed, 15);
  EXPECT_EQ(a1.integration_credits_consumed, 2);
  EXPECT_EQ(a1.total_credits_consumed, 17);
  EXPECT_EQ(a1.owner_user_id, "alice");
  EXPECT_EQ(a1.created_by_email, std::optional<std::string>("Alice@Corp.com"));
  const SuperagentRow& a4 = res.rows[2];
  EXPECT_EQ(a4.superagent_name, std::optional<std::string>("Alpha"));  // renamed
  EXPECT_EQ(a4.active_users_last_30d, 0);
  EXPECT_EQ(a4.total_credits_consumed, 0);
  EXPECT_EQ(a4.owner_user_id, "bob");
  EXPECT_EQ(a4.created_at_ms, At("2026-02-01"));  // earliest created/copied
}

TEST_F(SuperagentsTest, ExplicitRange) {
  SuperagentsRequest r;
  r.from = Day("2026-02-01");
  r.to = Day("2026-02-28");
  SuperagentsResult res = Run(r);
  ASSERT_EQ(Ids(res), (IdList{"a1", "a2", "a4"}));  // 107, then 0/0 by id
  EXPECT_EQ(res.rows[0].message_credits_consumed, 107);
  EXPECT_EQ(res.rows[0].total_credits_consumed, 107);
  EXPECT_EQ(res.rows[0].active_users_last_30d, 2);  // always the last 30 days
}

TEST_F(SuperagentsTest, EverySortFieldBothDirectionsWithIdTieBreak) {
  EXPECT_EQ(Ids(Run(Sorted("superagent_name"))), (IdList{"a4", "a1", "a2"}));  // byte order
  EXPECT_EQ(Ids(Run(Sorted("-superagent_name"))), (IdList{"a2", "a1", "a4"}));
  EXPECT_EQ(Ids(Run(Sorted("created_at"))), (IdList{"a1", "a4", "a2"}));  // a1/a4 tie: by id
  EXPECT_EQ(Ids(Run(Sorted("-created_at"))), (IdList{"a2", "a1", "a4"}));
  EXPECT_EQ(Ids(Run(Sorted("created_by_email"))), (IdList{"a2", "a4", "a1"}));  // null first
  EXPECT_EQ(Ids(Run(Sorted("-created_by_email"))), (IdList{"a1", "a2", "a4"}));
  EXPECT_EQ(Ids(Run(Sorted("owner_user_id"))), (IdList{"a1", "a4", "a2"}));  // alice bob carol
  EXPECT_EQ(Ids(Run(Sorted("-owner_user_id"))), (IdList{"a2", "a4", "a1"}));
  EXPECT_EQ(Ids(Run(Sorted("active_users_last_30d"))), (IdList{"a4", "a2", "a1"}));
  EXPECT_EQ(Ids(Run(Sorted("-active_users_last_30d"))), (IdList{"a1", "a2", "a4"}));
  EXPECT_EQ(Ids(Run(Sorted("message_credits_consumed"))), (IdList{"a4", "a1", "a2"}));  // 0 15 20
  EXPECT_EQ(Ids(Run(Sorted("-message_credits_consumed"))), (IdList{"a2", "a1", "a4"}));
  EXPECT_EQ(Ids(Run(Sorted("integration_credits_consumed"))), (IdList{"a4", "a1", "a2"}));
  EXPECT_EQ(Ids(Run(Sorted("-integration_credits_consumed"))), (IdList{"a2", "a1", "a4"}));
  EXPECT_EQ(Ids(Run(Sorted("total_credits_consumed"))), (IdList{"a4", "a1", "a2"}));
  EXPECT_EQ(Ids(Run(Sorted("-total_credits_consumed"))), (IdList{"a2", "a1", "a4"}));
}

TEST_F(SuperagentsTest, SearchAndVisibility) {
  SuperagentsRequest r;
  r.search = "CORP";  // creator email, case-insensitive
  EXPECT_EQ(Ids(Run(r)), (IdList{"a1"}));
  r.search = "BoT";  // name
  EXPECT_EQ(Ids(Run(r)), (IdList{"a2"}));
  r.search = "zeta";  // old name no longer matches
  EXPECT_EQ(Ids(Run(r)), (IdList{}));
  r.search.clear();
  r.visibility = VisibilityFilter::kPublic;
  EXPECT_EQ(Ids(Run(r)), (IdList{"a2", "a4"}));
  r.visibility = VisibilityFilter::kPublicWithoutLogin;
  EXPECT_EQ(Ids(Run(r)), (IdList{"a4"}));
  r.visibility = VisibilityFilter::kWorkspace;
  EXPECT_EQ(Ids(Run(r)), (IdList{"a1"}));
  r.visibility = VisibilityFilter::kPrivate;
  EXPECT_EQ(Ids(Run(r)), (IdList{}));
}

TEST_F(SuperagentsTest, Validation) {
  SuperagentsRequest r;
  r.workspace_id = "ws";
  r.from = Day("2026-03-01");
  auto res = ListSuperagents(*store_, cache_, clock_, r);
  ASSERT_FALSE(res.has_value());
  EXPECT_EQ(res.error().field, "to");
  r.from.reset();
  r.to = Day("2026-03-01");
  res = ListSuperagents(*store_, cache_, clock_, r);
  ASSERT_FALSE(res.has_value());
  EXPECT_EQ(res.error().field, "from");
  r.from = Day("2026-03-02");
  res = ListSuperagents(*store_, cache_, clock_, r);
  ASSERT_FALSE(res.has_value());
  EXPECT_EQ(res.error().field, "to");
  r.from.reset();
  r.to.reset();
  r.search = std::string(101, 'a');
  res = ListSuperagents(*store_, cache_, clock_, r);
  ASSERT_FALSE(res.has_value());
  EXPECT_EQ(res.error().field, "search");
  r.search = "\xC3";  // not UTF-8
  res = ListSuperagents(*store_, cache_, clock_, r);
  ASSERT_FALSE(res.has_value());
  EXPECT_EQ(res.error().field, "search");
  r.search.clear();
  for (int i = 0; i < 100; ++i) r.search += "\xC3\xA9";  // 100 characters in 200 bytes
  EXPECT_TRUE(ListSuperagents(*store_, cache_, clock_, r).has_value());
}

// The engine's cache is bounded by the estimated bytes of its tables, not only by
// their number: under a bound below one table, only the most recently used one stays.
TEST_F(SuperagentsTest, CacheIsBoundedInBytes) {
  // Two workspaces with tables of a few KB (names near the event parser's 2 KB limit).
  std::vector<UsageEvent> evs;
  for (int i = 0; i < 4; ++i) {
    for (const char* ws : {"big-1", "big-2"}) {
      UsageEvent e = Ev("2026-03-01", "alice", Action::kCreated, "", ws);
      e.entity_id = std::string(ws) + "-agent-" + std::to_string(i);
      e.entity_name = std::string(2000, static_cast<char>('a' + i));
      evs.push_back(e);
    }
  }
  Apply(evs);
  auto list = [&](const char* ws) {
    SuperagentsRequest r;
    r.workspace_id = ws;
    auto res = ListSuperagents(*store_, cache_, clock_, r);
    EXPECT_TRUE(res.has_value());
    return res ? res->rows.size() : 0;
  };
  EXPECT_EQ(list("big-1"), 4u);
  EXPECT_EQ(list("big-2"), 4u);
  SuperagentsCacheStats two = cache_.Stats();
  EXPECT_GE(two.workspaces, 2u);
  EXPECT_GT(two.bytes, 2u * 4 * 2000);

  cache_.SetMaxBytes(8000);  // below one table: only big-2 (used last) stays
  SuperagentsCacheStats one = cache_.Stats();
  EXPECT_EQ(one.workspaces, 1u);
  EXPECT_LT(one.bytes, two.bytes);
  EXPECT_EQ(list("big-2"), 4u);  // still cached
  EXPECT_EQ(cache_.Stats().builds, one.builds);
  EXPECT_EQ(list("big-1"), 4u);  // evicted: built again, and big-2 goes
  EXPECT_EQ(cache_.Stats().builds, one.builds + 1);
  EXPECT_EQ(cache_.Stats().workspaces, 1u);
  cache_.SetMaxBytes(SuperagentsCache::kDefaultMaxBytes);
}

TEST_F(SuperagentsTest, AnswersFollowEveryWrite) {
  // The engine caches per-workspace tables tagged with the store's version: a write
  // must be visible to the very next request, and repeated requests must agree.
  SuperagentsResult before = Run({});
  EXPECT_EQ(Run({}).rows.size(), before.rows.size());
  ASSERT_EQ(Ids(before), (IdList{"a2", "a1", "a4"}));
  UsageEvent e = Ev("2026-03-12", "dave", Action::kCreated, "a5");
  e.entity_name = "Fresh Agent";
  e.user_email = "dave@corp.com";
  Apply({e, Exec("2026-03-13", "u9", "a5", 50, 0), Exec("2026-03-14", "u8", "a4", 1, 0)});
  SuperagentsResult after = Run({});
  ASSERT_EQ(Ids(after), (IdList{"a5", "a2", "a1", "a4"}));
  EXPECT_EQ(after.rows[0].total_credits_consumed, 50);
  EXPECT_EQ(after.rows[0].active_users_last_30d, 1);
  EXPECT_EQ(after.rows[3].total_credits_consumed, 1);
  EXPECT_EQ(after.rows[3].active_users_last_30d, 1);
  SuperagentsRequest r;
  r.search = "fresh";
  EXPECT_EQ(Ids(Run(r)), (IdList{"a5"}));
  Apply({Ev("2026-03-14", "dave", Action::kDeleted, "a5")});
  EXPECT_EQ(Ids(Run(r)), (IdList{}));
  EXPECT_EQ(Ids(Run({})), (IdList{"a2", "a1", "a4"}));
}

TEST(SuperagentsParse, SortAndVisibility) {
  EXPECT_FALSE(ParseSuperagentSort("name").has_value());
  EXPECT_FALSE(ParseSuperagentSort("").has_value());
  EXPECT_FALSE(ParseSuperagentSort("--created_at").has_value());
  auto s = ParseSuperagentSort("-created_at");
  ASSERT_TRUE(s.has_value());
  EXPECT_TRUE(s->descending);
  EXPECT_EQ(s->field, SuperagentSortField::kCreatedAt);
  EXPECT_FALSE(ParseSuperagentSort("created_at")->descending);
  EXPECT_EQ(ParseVisibilityFilter("public"), VisibilityFilter::kPublic);
  EXPECT_FALSE(ParseVisibilityFilter("Public").has_value());
}

}  // namespace
}  // namespace tally::query
