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
    auto res = ListSuperagents(*store_, clock_, r);
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
  auto res = ListSuperagents(*store_, clock_, r);
  ASSERT_FALSE(res.has_value());
  EXPECT_EQ(res.error().field, "to");
  r.from.reset();
  r.to = Day("2026-03-01");
  res = ListSuperagents(*store_, clock_, r);
  ASSERT_FALSE(res.has_value());
  EXPECT_EQ(res.error().field, "from");
  r.from = Day("2026-03-02");
  res = ListSuperagents(*store_, clock_, r);
  ASSERT_FALSE(res.has_value());
  EXPECT_EQ(res.error().field, "to");
  r.from.reset();
  r.to.reset();
  r.search = std::string(101, 'a');
  res = ListSuperagents(*store_, clock_, r);
  ASSERT_FALSE(res.has_value());
  EXPECT_EQ(res.error().field, "search");
  r.search = "\xC3";  // not UTF-8
  res = ListSuperagents(*store_, clock_, r);
  ASSERT_FALSE(res.has_value());
  EXPECT_EQ(res.error().field, "search");
  r.search.clear();
  for (int i = 0; i < 100; ++i) r.search += "\xC3\xA9";  // 100 characters in 200 bytes
  EXPECT_TRUE(ListSuperagents(*store_, clock_, r).has_value());
}

// The engine's in-process cache is bounded by the estimated bytes of its tables, not only by
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
    auto res = ListSuperagents(*store_, clock_, r);
    EXPECT_TRUE(res.has_value());
    return res ? res->rows.size() : 0;
  };
  EXPECT_EQ(list("big-1"), 4u);
  EXPECT_EQ(list("big-2"), 4u);
  SuperagentsCacheStats two = GetSuperagentsCacheStats();
  EXPECT_GE(two.workspaces, 2u);
  EXPECT_GT(two.bytes, 2u * 4 * 2000);

  SetSuperagentsCacheMaxBytes(8000);  // below one table: only big-2 (used last) stays
  SuperagentsCacheStats one = GetSuperagentsCacheStats();
  EXPECT_EQ(one.workspaces, 1u);
  EXPECT_LT(one.bytes, two.bytes);
  EXPECT_EQ(list("big-2"), 4u);  // still cached
  EXPECT_EQ(GetSuperagentsCacheStats().builds, one.builds);
  EXPECT_EQ(list("big-1"), 4u);  // evicted: built again, and big-2 goes
  EXPECT_EQ(GetSuperagentsCacheStats().builds, one.builds + 1);
  EXPECT_EQ(GetSuperagentsCacheStats().workspaces, 1u);
  SetSuperagentsCacheMaxBytes(kSuperagentsCacheMaxBytes);
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

// Many agents and creators, so that whole-table scans (credits, active users, profiles) and
// per-agent point reads are both used; every answer must equal a brute-force reference computed
// from the events.
class SuperagentsManyTest : public internal::ViewsTestBase {
 protected:
  struct Ref {
    std::string id;
    std::optional<std::string> name;
    std::optional<std::string> email;
    std::string owner;
    int64_t created_at = 0;
    std::string visibility;
    bool live = true;
    struct Exec {
      DayNumber day;
      std::string user;
      double msg, integ;
    };
    std::vector<Exec> execs;
  };

  void SetUp() override {
    ViewsTestBase::SetUp();
    const char* kVis[] = {"private", "workspace", "public_with_login", "public_without_login", ""};
    std::vector<UsageEvent> evs;
    int id = 0;
    auto ev = [&](DayNumber day, const std::string& user, Action a, const std::string& agent) {
      UsageEvent e;
      e.id = std::to_string(++id);
      e.source = "test";
      e.kind = EntityKind::kAgent;
      e.action = a;
      e.time_ms = int64_t{day} * 86'400'000 + 3'600'000;
      e.workspace_id = "ws";
      e.user_id = user;
      e.entity_id = agent;
      return e;
    };
    for (int i = 0; i < 300; ++i) {
      Ref r;
      char buf[16];
      // Ids of different lengths: key order (length first) differs from id order.
      std::snprintf(buf, sizeof buf, i % 10 == 0 ? "ag%03d-x" : i % 10 == 1 ? "b%d" : "ag%03d", i);
      r.id = buf;
      const std::string creator = "c" + std::to_string(i % 100);
      r.owner = creator;
      if (i % 100 != 99) r.email = "Creator" + std::to_string(i % 100) + "@Example.com";
      if (i % 3 == 0) r.name = "Agent " + std::to_string(i);
      if (i % 3 == 1) r.name = "Bot " + std::to_string(i);
      r.visibility = kVis[i % 5];
      const DayNumber created = Day("2026-02-01") + i % 10;
      r.created_at = int64_t{created} * 86'400'000 + 3'600'000;
      UsageEvent e = ev(created, creator, Action::kCreated, r.id);
      if (r.name) e.entity_name = *r.name;
      e.entity_visibility = r.visibility;
      if (r.email) e.user_email = *r.email;
      evs.push_back(e);
      for (int k = 0; k < i % 6; ++k) {
        Ref::Exec x{Day("2026-02-10") + (i * 3 + k * 11) % 34,
                    "u" + std::to_string((i * 7 + k) % 40), double(i % 5 + k), double(k % 2)};
        UsageEvent ex = ev(x.day, x.user, Action::kExecuted, r.id);
        ex.message_credits = x.msg;
        ex.integration_credits = x.integ;
        evs.push_back(ex);
        r.execs.push_back(x);
      }
      if (i % 7 == 0) {
        evs.push_back(ev(Day("2026-03-01"), creator, Action::kDeleted, r.id));
        r.live = false;
      }
      refs_.push_back(std::move(r));
    }
    // Several batches, as ingest would write them.
    for (size_t b = 0; b < evs.size(); b += 97) {
      Apply(std::vector<UsageEvent>(evs.begin() + b, evs.begin() + std::min(evs.size(), b + 97)));
    }
  }

  std::vector<SuperagentRow> Expected(const SuperagentsRequest& req) const {
    const DayNumber today = Day("2026-03-15");
    const DayNumber from = req.from.value_or(Day("2026-03-01")), to = req.to.value_or(today);
    std::string needle = req.search;
    for (char& c : needle) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    auto contains = [&](const std::optional<std::string>& s) {
      if (!s) return false;
      std::string f = *s;
      for (char& c : f) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      return f.find(needle) != std::string::npos;
    };
    std::vector<SuperagentRow> rows;
    for (const Ref& r : refs_) {
      if (!r.live) continue;
      if (req.visibility == VisibilityFilter::kPublic && r.visibility != "public_with_login" &&
          r.visibility != "public_without_login") {
        continue;
      }
      if (!needle.empty() && !contains(r.name) && !contains(r.email)) continue;
      SuperagentRow row;
      row.superagent_id = r.id;
      row.superagent_name = r.name;
      row.owner_user_id = r.owner;
      row.created_by_email = r.email;
      row.created_at_ms = r.created_at;
      std::set<std::string> users;
      for (const Ref::Exec& x : r.execs) {
        if (x.day >= from && x.day <= to) {
          row.message_credits_consumed += x.msg;
          row.integration_credits_consumed += x.integ;
        }
        if (x.day >= today - 29 && x.day <= today) users.insert(x.user);
      }
      row.total_credits_consumed = row.message_credits_consumed + row.integration_credits_consumed;
      row.active_users_last_30d = static_cast<int64_t>(users.size());
      rows.push_back(std::move(row));
    }
    auto key = [&](const SuperagentRow& r) -> std::pair<double, std::string> {
      switch (req.sort.field) {
        case SuperagentSortField::kTotalCredits:
          return {r.total_credits_consumed, ""};
        case SuperagentSortField::kActiveUsers:
          return {double(r.active_users_last_30d), ""};
        case SuperagentSortField::kName:
          return {0, r.superagent_name.value_or("")};
        case SuperagentSortField::kCreatedByEmail:
          return {0, r.created_by_email.value_or("")};
        case SuperagentSortField::kCreatedAt:
          return {double(r.created_at_ms), ""};
        case SuperagentSortField::kOwnerUserId:
          return {0, r.owner_user_id};
        default:
          ADD_FAILURE() << "sort field not covered by the reference";
          return {0, ""};
      }
    };
    std::sort(rows.begin(), rows.end(), [&](const SuperagentRow& a, const SuperagentRow& b) {
      auto ka = key(a), kb = key(b);
      if (ka != kb) return req.sort.descending ? ka > kb : ka < kb;
      return a.superagent_id < b.superagent_id;
    });
    return rows;
  }

  void Check(SuperagentsRequest req, const std::string& what) {
    req.workspace_id = "ws";
    auto res = ListSuperagents(*store_, clock_, req);
    ASSERT_TRUE(res.has_value()) << res.error().message;
    std::vector<SuperagentRow> want = Expected(req);
    ASSERT_EQ(res->rows.size(), want.size()) << what;
    // The on-demand listing: the same rows.
    auto listing = OpenSuperagents(*store_, clock_, req);
    ASSERT_TRUE(listing.has_value()) << listing.error().message;
    ASSERT_EQ((*listing)->size(), want.size()) << what;
    EXPECT_EQ((*listing)->from(), res->from);
    EXPECT_EQ((*listing)->to(), res->to);
    for (size_t i = 0; i < want.size(); ++i) {
      const SuperagentRow r = (*listing)->Row(i);
      ASSERT_EQ(r.superagent_id, res->rows[i].superagent_id) << what;
      EXPECT_EQ(r.total_credits_consumed, res->rows[i].total_credits_consumed) << what;
      EXPECT_EQ(r.active_users_last_30d, res->rows[i].active_users_last_30d) << what;
      EXPECT_EQ(r.created_by_email, res->rows[i].created_by_email) << what;
    }
    for (size_t i = 0; i < want.size(); ++i) {
      const SuperagentRow& g = res->rows[i];
      const SuperagentRow& w = want[i];
      ASSERT_EQ(g.superagent_id, w.superagent_id) << what << " row " << i;
      EXPECT_EQ(g.superagent_name, w.superagent_name) << what << " " << w.superagent_id;
      EXPECT_EQ(g.active_users_last_30d, w.active_users_last_30d) << what << " " << w.superagent_id;
      EXPECT_EQ(g.message_credits_consumed, w.message_credits_consumed) << what;
      EXPECT_EQ(g.integration_credits_consumed, w.integration_credits_consumed) << what;
      EXPECT_EQ(g.total_credits_consumed, w.total_credits_consumed) << what;
      EXPECT_EQ(g.owner_user_id, w.owner_user_id) << what;
      EXPECT_EQ(g.created_by_email, w.created_by_email) << what << " " << w.superagent_id;
      EXPECT_EQ(g.created_at_ms, w.created_at_ms) << what;
    }
  }

  std::vector<Ref> refs_;
  Clock clock_ = Clock::Fixed(At("2026-03-15") + 5'000);
};

// A request sorted by `sort`, with an optional search.
SuperagentsRequest Req(const char* sort, std::string search = "") {
  SuperagentsRequest r;
  r.sort = *ParseSuperagentSort(sort);
  r.search = std::move(search);
  return r;
}

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

// After writes the cached table is brought forward (patched, not rebuilt) and every answer still
// equals the reference; only a write the change log did not see makes the next request rebuild.
TEST_F(SuperagentsManyTest, CachedTableFollowsWritesExactly) {
  auto check_all = [&](const std::string& what) {
    Check(Req("-total_credits_consumed"), what + ": by credits");
    Check(Req("-total_credits_consumed", "bot"), what + ": by credits, search");
    Check(Req("-active_users_last_30d"), what + ": by active users");
    Check(Req("superagent_name", "agent"), what + ": by name");
    Check(Req("-total_credits_consumed", "agent 27"), what + ": few");
    // A range of several buckets (February, March 1, two weeks): its last bucket is this week.
    SuperagentsRequest range = Req("-total_credits_consumed");
    range.from = Day("2026-02-01");
    range.to = Day("2026-03-15");
    Check(range, what + ": February to today");
    range.from = Day("2026-03-09");  // one bucket: this week
    Check(range, what + ": this week");
  };
  check_all("warm-up");
  const uint64_t scans_warm = GetSuperagentsCacheStats().column_scans;
  int next_id = 100'000;
  auto exec = [&](size_t agent, const char* day, const std::string& user, double msg,
                  double integ) {
    Ref& r = refs_[agent];
    UsageEvent e;
    e.id = std::to_string(++next_id);
    e.source = "test";
    e.kind = EntityKind::kAgent;
    e.action = Action::kExecuted;
    e.time_ms = At(day);
    e.workspace_id = "ws";
    e.user_id = user;
    e.entity_id = r.id;
    if (r.name) e.entity_name = *r.name;  // unchanged fields, as producers send them
    e.entity_visibility = r.visibility;
    e.message_credits = msg;
    e.integration_credits = integ;
    r.execs.push_back({Day(day), user, msg, integ});
    return e;
  };

  // 1. Usage only: a few live agents (one gets a new user, one moves to the top), one deleted
  // agent, and an event by a creator that repeats its email.
  SuperagentsCacheStats before = GetSuperagentsCacheStats();
  UsageEvent by_creator = exec(2, "2026-03-14", "c2", 1, 0);
  by_creator.user_email = *refs_[2].email;
  Apply({exec(5, "2026-03-14", "u-new", 2, 1), exec(8, "2026-03-13", "u1", 500, 0),
         exec(7, "2026-03-14", "u2", 3, 0), by_creator});
  check_all("usage only");
  SuperagentsCacheStats after = GetSuperagentsCacheStats();
  EXPECT_EQ(after.builds, before.builds);
  EXPECT_GE(after.refreshes, before.refreshes + 1);

  // 2. Many agents touched at once (beyond point-read patching of the columns): still exact.
  std::vector<UsageEvent> many;
  for (size_t i = 0; i < refs_.size(); i += 2) many.push_back(exec(i, "2026-03-15", "u3", 1, 1));
  Apply(many);
  check_all("many agents");
  EXPECT_EQ(GetSuperagentsCacheStats().builds, after.builds);

  // 2b. Late events, usage only: days in earlier buckets of the 30-day window and of the ranges
  // (a new user and a known one on a February day, one on March 3), then one on today's week
  // only. Each refresh re-reads just the buckets holding the touched days.
  Apply({exec(6, "2026-02-20", "u-late", 7, 0), exec(9, "2026-02-20", "u1", 0, 3),
         exec(11, "2026-03-03", "u-late", 1, 1)});
  check_all("late events");
  Apply({exec(6, "2026-03-10", "u-late2", 2, 0)});
  check_all("an event in this week");
  Apply({exec(12, "2026-01-10", "u-old", 50, 0)});  // outside every range and the window
  check_all("an event before every range");
  // The store's writes bring the cached table forward themselves (Store::Follow): requests
  // after a write find it at the store's latest state and refresh nothing.
  const SuperagentsCacheStats before_write = GetSuperagentsCacheStats();
  Apply({exec(5, "2026-03-15", "u-followed", 1, 0), exec(6, "2026-03-14", "u1", 2, 0)});
  const SuperagentsCacheStats after_write = GetSuperagentsCacheStats();
  EXPECT_GT(after_write.refreshes, before_write.refreshes);
  check_all("followed by the write");
  EXPECT_EQ(GetSuperagentsCacheStats().refreshes, after_write.refreshes);
  EXPECT_EQ(GetSuperagentsCacheStats().builds, after_write.builds);
  // A write that leaves the workspace as it was, then usage again: the cached columns (and the
  // user sets behind the active users) follow both.
  UsageEvent elsewhere = exec(13, "2026-03-15", "u1", 1, 0);
  refs_[13].execs.pop_back();
  elsewhere.workspace_id = "other-ws";
  Apply({elsewhere});
  check_all("a write to another workspace");
  Apply({exec(13, "2026-03-15", "u-after", 1, 0)});
  check_all("usage after it");
  EXPECT_EQ(GetSuperagentsCacheStats().builds, after.builds);
  // Every column was brought forward from the log, none scanned again.
  EXPECT_EQ(GetSuperagentsCacheStats().column_scans, scans_warm);

  // 3. Every other kind of change in one batch, after the same-day events above: a rename, a
  // new visibility, a deletion, two new agents (one by a new creator), a creator's new email and
  // a creator's first email. The cached table is patched in memory, not rebuilt.
  before = GetSuperagentsCacheStats();
  std::vector<UsageEvent> batch;
  auto later = [&](UsageEvent e) {
    e.time_ms += 1000;
    batch.push_back(std::move(e));
  };
  refs_[4].name = "Renamed Agent";
  later(exec(4, "2026-03-15", "u4", 0, 0));
  refs_[5].visibility = "public_with_login";
  later(exec(5, "2026-03-15", "u5", 1, 0));
  {
    UsageEvent del = exec(10, "2026-03-15", "c10", 0, 0);
    refs_[10].execs.pop_back();
    del.action = Action::kDeleted;
    del.message_credits = del.integration_credits = 0;
    refs_[10].live = false;
    later(del);
  }
  {
    UsageEvent email = exec(3, "2026-03-15", "c3", 0, 0);
    email.user_email = "New3@example.com";
    for (Ref& r : refs_)
      if (r.owner == "c3") r.email = email.user_email;
    later(email);
    UsageEvent first = exec(99, "2026-03-15", "c99", 0, 0);
    first.user_email = "c99@first.org";
    for (Ref& r : refs_)
      if (r.owner == "c99") r.email = first.user_email;
    later(first);
  }
  auto create = [&](const std::string& id, const std::string& creator,
                    std::optional<std::string> email, const char* name) {
    Ref fresh;
    fresh.id = id;
    fresh.name = name;
    fresh.owner = creator;
    fresh.email = std::move(email);
    fresh.visibility = "private";
    fresh.created_at = At("2026-03-15") + 1000;
    refs_.push_back(fresh);
    UsageEvent created = exec(refs_.size() - 1, "2026-03-15", creator, 0, 0);
    refs_.back().execs.clear();
    created.action = Action::kCreated;
    created.message_credits = created.integration_credits = 0;
    if (refs_.back().email) created.user_email = *refs_.back().email;
    later(created);
    later(exec(refs_.size() - 1, "2026-03-15", "u9", 4, 0));
  };
  create("zz-new", "c1", refs_[1].email, "Agent New");
  create("ag000-new", "c-new", "CNEW@x.com", "Bot New");
  Apply(batch);
  check_all("structural changes");
  Check(Req("-created_by_email"), "structural changes: by email");
  Check(Req("created_at", "new"), "structural changes: by created_at");
  Check(Req("-owner_user_id"), "structural changes: by owner");
  SuperagentsRequest range = Req("-total_credits_consumed");  // a range not cached: a scan
  range.from = Day("2026-02-20");
  range.to = Day("2026-03-15");
  Check(range, "structural changes: new range");
  SuperagentsCacheStats now = GetSuperagentsCacheStats();
  EXPECT_EQ(now.builds, before.builds);
  EXPECT_GT(now.refreshes, before.refreshes);

  // 4. Many structural refreshes in a row (the table's string buffers are repacked on the way).
  for (int round = 0; round < 24; ++round) {
    batch.clear();
    Ref& renamed = refs_[20 + round];
    renamed.name = "Round " + std::to_string(round) + " Agent";
    later(exec(20 + round, "2026-03-15", "u7", 1, 0));
    create("new-" + std::to_string(round), "c" + std::to_string(round), refs_[round].email,
           "Bot round");
    Apply(batch);
    Check(Req("-total_credits_consumed", "round"), "round " + std::to_string(round));
  }
  check_all("after the rounds");
  Check(Req("-created_by_email"), "after the rounds: by email");
  EXPECT_EQ(GetSuperagentsCacheStats().builds, now.builds);

  // 5. A write the change log did not see: the next request rebuilds.
  store::WriteSet unlogged(*store_);
  unlogged.PutOffset("x", 0, {"c", 1});
  ASSERT_TRUE(store::testing::WriteUnlogged(*store_, &unlogged).has_value());
  check_all("after an unlogged write");
  EXPECT_GT(GetSuperagentsCacheStats().builds, now.builds);
}

// Tables built and columns scanned by a request while ingest stages batches: a batch staged
// during the build must be in the table or in the next refresh, never in both. Ingest stages
// here (as tallyd does) on another thread while requests build from a cold cache; every answer
// after the writer stops equals the reference.
TEST_F(SuperagentsManyTest, BuildsRacingStagesCountEveryBatchOnce) {
  agg_->set_stage(true);
  int next_id = 200'000;
  int64_t unlogged_offset = 0;
  const SuperagentsCacheStats before = GetSuperagentsCacheStats();
  for (int round = 0; round < 12; ++round) {
    std::atomic<bool> done{false};
    std::thread writer([&] {
      for (int b = 0; b < 40; ++b) {
        std::vector<UsageEvent> batch;
        for (size_t k = 0; k < 30; ++k) {
          Ref& r = refs_[(b * 31 + k * 7) % refs_.size()];
          UsageEvent e;
          e.id = std::to_string(++next_id);
          e.source = "test";
          e.kind = EntityKind::kAgent;
          e.action = Action::kExecuted;
          e.time_ms = At("2026-03-14");
          e.workspace_id = "ws";
          e.user_id = "u" + std::to_string(k % 9);
          e.entity_id = r.id;
          if (r.name) e.entity_name = *r.name;
          e.entity_visibility = r.visibility;
          e.message_credits = 1;
          e.integration_credits = 2;
          r.execs.push_back({Day("2026-03-14"), e.user_id, 1, 2});
          batch.push_back(std::move(e));
        }
        Apply(batch);
      }
      done = true;
    });
    // Builds on this thread while the writer stages: a write the change log did not see makes
    // the next request rebuild the table (the follower cannot bring it forward).
    while (!done) {
      store::WriteSet unlogged(*store_);
      unlogged.PutOffset("x", 0, {"c", ++unlogged_offset});
      ASSERT_TRUE(store::testing::WriteUnlogged(*store_, &unlogged).has_value());
      SuperagentsRequest r = Req("-total_credits_consumed");
      r.workspace_id = "ws";
      ASSERT_TRUE(ListSuperagents(*store_, clock_, r).has_value());
    }
    writer.join();
    // The last table built above is brought forward from the change log: exact.
    Check(Req("-total_credits_consumed"), "round " + std::to_string(round));
    Check(Req("-active_users_last_30d"), "round " + std::to_string(round) + ": active users");
  }
  EXPECT_GT(GetSuperagentsCacheStats().builds, before.builds + 12) << "no builds raced a stage";
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
