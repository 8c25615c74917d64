#pragma once
// Test-only fixture for the Super Agents engine's unit tests (query/superagents.h): a store with
// 300 agents of 100 creators in workspace "ws" (ids of several lengths, some deleted, some
// without a name or a creator email, usage over February and March 2026), a brute-force
// reference computed from the events (Expected), and Check, which compares every path of the
// engine with it.
//
//   class MyTest : public tally::query::internal::SuperagentsManyTest {};
//   TEST_F(MyTest, X) { Check(Req("-total_credits_consumed", "bot"), "many by name"); }

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/calendar.h"
#include "common/clock.h"
#include "query/internal/views_test_base.h"
#include "query/superagents.h"
#include "query/testing/superagents_testing.h"

namespace tally::query::internal {

inline DayNumber Day(const char* text) { return *ParseDay(text); }
// 01:00 UTC of `day`.
inline int64_t At(const char* day) { return int64_t{Day(day)} * 86'400'000 + 3'600'000; }

// Many agents and creators, so that whole-table scans (credits, active users, profiles) and
// per-agent point reads are both used; every answer must equal a brute-force reference computed
// from the events.
class SuperagentsManyTest : public ViewsTestBase {
 protected:
  using Action = event::Action;
  using EntityKind = event::EntityKind;
  using UsageEvent = event::UsageEvent;

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
    auto res = ListSuperagents(*store_, cache_, clock_, req);
    ASSERT_TRUE(res.has_value()) << res.error().message;
    std::vector<SuperagentRow> want = Expected(req);
    ASSERT_EQ(res->rows.size(), want.size()) << what;
    // The on-demand listing: the same rows.
    auto listing = OpenSuperagents(*store_, cache_, clock_, req);
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

  // Check on the sorts and searches a cached table serves, and on credit ranges of several
  // buckets and of one.
  void CheckAll(const std::string& what);
  // An agent.executed event on refs_[agent] (recorded in its reference), with the agent's
  // unchanged fields, as producers send them.
  UsageEvent ExecEvent(size_t agent, const char* day, const std::string& user, double msg,
                       double integ);
  // Queues `e` one second later than made, into batch_.
  void Later(UsageEvent e);
  // A new agent `id` by `creator` (with its email) created today, and an execution of it, into
  // batch_.
  void Create(const std::string& id, const std::string& creator, std::optional<std::string> email,
              const char* name);
  // Every other kind of change, into batch_ one second after the day's events: a rename, a new
  // visibility, a deletion, a creator's new email and a creator's first email, and two new
  // agents (one by a new creator).
  void QueueStructuralChanges();

  std::vector<Ref> refs_;
  Clock clock_ = Clock::Fixed(At("2026-03-15") + 5'000);
  SuperagentsCache cache_;
  int next_id_ = 100'000;
  std::vector<UsageEvent> batch_;
};

// A request sorted by `sort`, with an optional search.
inline SuperagentsRequest Req(const char* sort, std::string search = "") {
  SuperagentsRequest r;
  r.sort = *ParseSuperagentSort(sort);
  r.search = std::move(search);
  return r;
}

inline void SuperagentsManyTest::CheckAll(const std::string& what) {
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
}

inline event::UsageEvent SuperagentsManyTest::ExecEvent(size_t agent, const char* day,
                                                        const std::string& user, double msg,
                                                        double integ) {
  Ref& r = refs_[agent];
  UsageEvent e;
  e.id = std::to_string(++next_id_);
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
}

inline void SuperagentsManyTest::Later(UsageEvent e) {
  e.time_ms += 1000;
  batch_.push_back(std::move(e));
}

inline void SuperagentsManyTest::Create(const std::string& id, const std::string& creator,
                                        std::optional<std::string> email, const char* name) {
  Ref fresh;
  fresh.id = id;
  fresh.name = name;
  fresh.owner = creator;
  fresh.email = std::move(email);
  fresh.visibility = "private";
  fresh.created_at = At("2026-03-15") + 1000;
  refs_.push_back(fresh);
  UsageEvent created = ExecEvent(refs_.size() - 1, "2026-03-15", creator, 0, 0);
  refs_.back().execs.clear();
  created.action = Action::kCreated;
  created.message_credits = created.integration_credits = 0;
  if (refs_.back().email) created.user_email = *refs_.back().email;
  Later(created);
  Later(ExecEvent(refs_.size() - 1, "2026-03-15", "u9", 4, 0));
}

inline void SuperagentsManyTest::QueueStructuralChanges() {
  refs_[4].name = "Renamed Agent";
  Later(ExecEvent(4, "2026-03-15", "u4", 0, 0));
  refs_[5].visibility = "public_with_login";
  Later(ExecEvent(5, "2026-03-15", "u5", 1, 0));
  {
    UsageEvent del = ExecEvent(10, "2026-03-15", "c10", 0, 0);
    refs_[10].execs.pop_back();
    del.action = Action::kDeleted;
    del.message_credits = del.integration_credits = 0;
    refs_[10].live = false;
    Later(del);
  }
  {
    UsageEvent email = ExecEvent(3, "2026-03-15", "c3", 0, 0);
    email.user_email = "New3@example.com";
    for (Ref& r : refs_)
      if (r.owner == "c3") r.email = email.user_email;
    Later(email);
    UsageEvent first = ExecEvent(99, "2026-03-15", "c99", 0, 0);
    first.user_email = "c99@first.org";
    for (Ref& r : refs_)
      if (r.owner == "c99") r.email = first.user_email;
    Later(first);
  }
  Create("zz-new", "c1", refs_[1].email, "Agent New");
  Create("ag000-new", "c-new", "CNEW@x.com", "Bot New");
}

}  // namespace tally::query::internal
