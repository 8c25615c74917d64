// Unit tests of the request-analytics engine against a brute-force reference over random events
// (several batches, renames, missing projects and emails, late events), and after reloading the
// label directory from the store as a restarted tallyd would.
#include "query/requests.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <list>
#include <map>
#include <random>
#include <set>

#include "query/internal/views_test_base.h"
#include "store/directory.h"

namespace tally::query {
namespace {

using event::Action;
using event::EntityKind;
using event::UsageEvent;

constexpr int64_t kDayMs = 86'400'000;
constexpr DayNumber kFirstDay = 20'400;  // 2025-11-08
constexpr int kDays = 70;

struct Reference {
  std::vector<UsageEvent> events;  // in log order

  struct Latest {
    int64_t t = INT64_MIN;
    std::string v;
    void Offer(int64_t time, const std::string& value) {
      if (!value.empty() && time >= t) t = time, v = value;
    }
  };

  // The latest email of `user` in events naming one of `orgs` (per organization, ties to the
  // later event; across organizations, ties to the greater organization name), else the id.
  std::string UserLabel(const std::string& user, const std::vector<std::string>& orgs) const {
    std::map<std::string, Latest> per_org;
    for (const auto& e : events)
      if (e.user_id == user && std::find(orgs.begin(), orgs.end(), e.organization_id) != orgs.end())
        per_org[e.organization_id].Offer(e.time_ms, e.user_email);
    Latest best;
    for (const auto& [org, l] : per_org)
      if (!l.v.empty()) best.Offer(l.t, l.v);
    return best.v.empty() ? user : best.v;
  }
  std::string AgentName(const std::pair<std::string, std::string>& agent) const {
    Latest l;
    for (const auto& e : events)
      if (e.kind == EntityKind::kAgent && e.workspace_id == agent.first &&
          e.entity_id == agent.second)
        l.Offer(e.time_ms, e.entity_name);
    return l.v.empty() ? agent.second : l.v;
  }

  std::vector<const UsageEvent*> Requests(const RequestsQuery& q) const {
    std::vector<const UsageEvent*> out;
    for (const auto& e : events) {
      if (e.kind != EntityKind::kAgent || e.action != Action::kExecuted) continue;
      if (e.organization_id.empty() || std::find(q.organizations.begin(), q.organizations.end(),
                                                 e.organization_id) == q.organizations.end())
        continue;
      if (q.project_id && e.project_id != *q.project_id) continue;
      DayNumber d = static_cast<DayNumber>(e.time_ms / kDayMs);
      if (d < q.start || d > q.end) continue;
      if (q.agent_name && AgentName({e.workspace_id, e.entity_id}) != *q.agent_name) continue;
      out.push_back(&e);
    }
    return out;
  }

  RequestsResult Run(RequestsMetric m, const RequestsQuery& q) const {
    auto reqs = Requests(q);
    RequestsResult r;
    std::set<std::string> users;
    std::map<std::pair<std::string, std::string>, std::set<std::string>> by_project, by_agent;
    std::map<std::pair<std::string, std::string>, std::pair<uint64_t, uint64_t>> agent_stats;
    struct U {
      uint64_t requests = 0, tokens = 0;
      double cost = 0;
    };
    std::map<std::string, U> user_stats;
    for (const UsageEvent* e : reqs) {
      users.insert(e->user_id);
      if (!e->project_id.empty())
        by_project[{e->organization_id, e->project_id}].insert(e->user_id);
      by_agent[{e->workspace_id, e->entity_id}].insert(e->user_id);
      auto& as = agent_stats[{e->workspace_id, e->entity_id}];
      as.first += 1;
      as.second += e->tokens.value_or(0);
      U& u = user_stats[e->user_id];
      u.requests += 1;
      u.tokens += e->tokens.value_or(0);
      u.cost += e->cost_usd.value_or(0);
    }
    auto avg = [](const auto& groups) {
      uint64_t sum = 0;
      for (const auto& [k, v] : groups) sum += v.size();
      return groups.empty() ? 0.0 : static_cast<double>(sum) / static_cast<double>(groups.size());
    };
    auto top_agents = [&](bool tokens) {
      std::vector<std::tuple<uint64_t, std::string, std::pair<std::string, std::string>>> v;
      for (const auto& [a, s] : agent_stats)
        v.emplace_back(tokens ? s.second : s.first, AgentName(a), a);
      std::sort(v.begin(), v.end(), [](const auto& x, const auto& y) {
        if (std::get<0>(x) != std::get<0>(y)) return std::get<0>(x) > std::get<0>(y);
        if (std::get<1>(x) != std::get<1>(y)) return std::get<1>(x) < std::get<1>(y);
        return std::get<2>(x) < std::get<2>(y);
      });
      std::vector<RankedRow> out;
      for (size_t i = 0; i < v.size() && i < 10; ++i)
        out.push_back({std::get<1>(v[i]), std::get<0>(v[i])});
      return out;
    };
    auto ranked_users = [&]() {
      std::vector<std::tuple<uint64_t, std::string, std::string>> v;
      for (const auto& [id, s] : user_stats)
        v.emplace_back(s.requests, UserLabel(id, q.organizations), id);
      std::sort(v.begin(), v.end(), [](const auto& x, const auto& y) {
        if (std::get<0>(x) != std::get<0>(y)) return std::get<0>(x) > std::get<0>(y);
        if (std::get<1>(x) != std::get<1>(y)) return std::get<1>(x) < std::get<1>(y);
        return std::get<2>(x) < std::get<2>(y);
      });
      return v;
    };
    switch (m) {
      case RequestsMetric::kTotalActiveUsers:
        r.count = users.size();
        break;
      case RequestsMetric::kTotalActiveProjects:
        r.count = by_project.size();
        break;
      case RequestsMetric::kTotalActiveAgents:
        r.count = by_agent.size();
        break;
      case RequestsMetric::kAverageRequestsPerDay:
        r.average = static_cast<double>(reqs.size()) / (q.end - q.start + 1);
        break;
      case RequestsMetric::kAverageUsersPerProject:
        r.average = avg(by_project);
        break;
      case RequestsMetric::kAverageUsersPerAgent:
        r.average = avg(by_agent);
        break;
      case RequestsMetric::kTop10AgentsByRequests:
        r.top = top_agents(false);
        break;
      case RequestsMetric::kTop10AgentsByTokens:
        r.top = top_agents(true);
        break;
      case RequestsMetric::kTop10UsersByRequests: {
        auto v = ranked_users();
        for (size_t i = 0; i < v.size() && i < 10; ++i)
          r.top.push_back({std::get<1>(v[i]), std::get<0>(v[i])});
        break;
      }
      case RequestsMetric::kAgentUsagePerUser: {
        // The rows view their labels in r.text, as RunRequests' rows do.
        const auto ranked = ranked_users();
        auto text = std::make_shared<std::string>();
        for (const auto& [n, label, id] : ranked) *text += label;
        size_t at = 0;
        for (const auto& [n, label, id] : ranked) {
          const U& u = user_stats.at(id);
          r.usage.push_back(
              {std::string_view(*text).substr(at, label.size()), u.cost, u.requests, u.tokens});
          at += label.size();
        }
        r.text = std::move(text);
        break;
      }
      case RequestsMetric::kTotalRequestsPerDay:
        for (DayNumber d = q.start; d <= q.end; ++d) r.days.push_back({d, 0, 0});
        for (const UsageEvent* e : reqs) {
          auto& row = r.days[static_cast<size_t>(e->time_ms / kDayMs - q.start)];
          row.requests += 1;
          row.errors += e->is_error() ? 1 : 0;
        }
        break;
    }
    return r;
  }
};

void ExpectSame(const RequestsResult& want, const RequestsResult& got, const std::string& ctx) {
  EXPECT_EQ(want.count, got.count) << ctx;
  EXPECT_NEAR(want.average, got.average, 1e-9 * std::max(1.0, std::abs(want.average))) << ctx;
  ASSERT_EQ(want.top.size(), got.top.size()) << ctx;
  for (size_t i = 0; i < want.top.size(); ++i) {
    EXPECT_EQ(want.top[i].label, got.top[i].label) << ctx << " top row " << i;
    EXPECT_EQ(want.top[i].value, got.top[i].value) << ctx << " top row " << i;
  }
  ASSERT_EQ(want.days.size(), got.days.size()) << ctx;
  for (size_t i = 0; i < want.days.size(); ++i) {
    EXPECT_EQ(want.days[i].day, got.days[i].day) << ctx;
    EXPECT_EQ(want.days[i].requests, got.days[i].requests) << ctx << " day " << i;
    EXPECT_EQ(want.days[i].errors, got.days[i].errors) << ctx << " day " << i;
  }
  ASSERT_EQ(want.usage.size(), got.usage.size()) << ctx;
  for (size_t i = 0; i < want.usage.size(); ++i) {
    EXPECT_EQ(want.usage[i].user, got.usage[i].user) << ctx << " usage row " << i;
    EXPECT_EQ(want.usage[i].requests, got.usage[i].requests) << ctx;
    EXPECT_EQ(want.usage[i].tokens, got.usage[i].tokens) << ctx;
    // Costs are summed in nano-dollars (each event's cost rounded to 1e-9 USD, exact and
    // independent of batching): up to half a nano-dollar per request from the float sum.
    EXPECT_NEAR(want.usage[i].cost, got.usage[i].cost,
                1e-9 * std::max(1.0, want.usage[i].cost) + 0.5e-9 * want.usage[i].requests)
        << ctx;
  }
}

constexpr RequestsMetric kAllMetrics[] = {
    RequestsMetric::kTotalActiveUsers,       RequestsMetric::kTotalActiveProjects,
    RequestsMetric::kTotalActiveAgents,      RequestsMetric::kAverageRequestsPerDay,
    RequestsMetric::kAverageUsersPerProject, RequestsMetric::kAverageUsersPerAgent,
    RequestsMetric::kTop10AgentsByRequests,  RequestsMetric::kTop10UsersByRequests,
    RequestsMetric::kTop10AgentsByTokens,    RequestsMetric::kTotalRequestsPerDay,
    RequestsMetric::kAgentUsagePerUser};

class RequestsTest : public internal::ViewsTestBase {
 protected:
  void SetUp() override {
    ViewsTestBase::SetUp();
    dir_index_ = std::make_unique<store::Directory>();
    agg_->set_directory(dir_index_.get());
  }

  // Random events: 3 organizations (plus none), 5 workspaces, 25 users, 14 agents that get
  // renamed (names collide on purpose), projects missing now and then.
  void Generate(int n, uint32_t seed) {
    std::mt19937 rng(seed);
    auto pick = [&](int k) { return static_cast<int>(rng() % static_cast<uint32_t>(k)); };
    std::vector<UsageEvent> batch;
    for (int i = 0; i < n; ++i) {
      UsageEvent e;
      e.id = "e" + std::to_string(ref_.events.size() + batch.size());
      e.source = "test";
      int ws = pick(5);
      e.workspace_id = "ws" + std::to_string(ws);
      const int org = ws % 4;  // ws3 has no organization
      if (org != 3) e.organization_id = "org" + std::to_string(org);
      if (pick(10) != 0) e.project_id = "p" + std::to_string(pick(4));
      int user = pick(25);
      e.user_id = "u" + std::to_string(user);
      if (pick(3) != 0) e.user_email = "mail" + std::to_string((user * 7 + pick(2)) % 30);
      e.kind = pick(8) == 0 ? EntityKind::kWorkflow : EntityKind::kAgent;
      e.action = pick(5) == 0 ? Action::kUpdated : Action::kExecuted;
      e.entity_id = "a" + std::to_string(pick(14));
      if (pick(4) == 0) e.entity_name = "name" + std::to_string(pick(6));
      e.time_ms = int64_t{kFirstDay + pick(kDays)} * kDayMs + pick(86'400) * 1000;
      if (pick(2)) e.tokens = pick(1000);
      if (pick(2)) e.cost_usd = pick(1000) / 997.0;
      if (pick(6) == 0) e.status = "error";
      batch.push_back(std::move(e));
      if (batch.size() == 97) Flush(&batch);
    }
    Flush(&batch);
  }
  void Flush(std::vector<UsageEvent>* batch) {
    Apply(*batch);
    for (Shard& s : shards_) s.Apply(*batch);
    for (auto& e : *batch) ref_.events.push_back(std::move(e));
    batch->clear();
  }

  // One instance of a group: a store keyed per workspace that receives the events of some
  // workspaces (those of its partitions).
  struct Shard {
    std::filesystem::path dir;
    std::set<std::string> workspaces;
    std::unique_ptr<store::Store> store;
    std::unique_ptr<aggregate::Aggregator> agg;
    std::unique_ptr<store::Directory> directory;
    int64_t offset = 0;

    void Open(const std::filesystem::path& path, std::set<std::string> ws) {
      dir = path;
      workspaces = std::move(ws);
      std::filesystem::remove_all(dir);
      auto s = store::Store::Open({.path = dir.string()});
      ASSERT_TRUE(s.has_value()) << s.error().message;
      store = std::move(*s);
      ASSERT_TRUE(store->BindRequestScopes(store::Store::RequestScopes::kWorkspace));
      agg = std::move(*aggregate::Aggregator::Create(store.get()));
      agg->set_request_scope_by_workspace(true);
      directory = std::make_unique<store::Directory>();
      agg->set_directory(directory.get());
    }
    void Apply(const std::vector<UsageEvent>& events) {
      std::vector<const UsageEvent*> mine;
      for (const auto& e : events)
        if (workspaces.contains(e.workspace_id)) mine.push_back(&e);
      aggregate::PartitionOffset off{"t", 0, ++offset};
      ASSERT_TRUE(agg->Apply(mine, {&off, 1}, "c").has_value());
    }
    // The query narrowed to this shard's workspaces (every one, whatever its organization: the
    // engine keeps those of the query's organizations).
    RequestsQuery Narrow(RequestsQuery q) const {
      for (const std::string& ws : workspaces)
        for (int o = 0; o < 3; ++o) q.workspace_scopes.emplace_back("org" + std::to_string(o), ws);
      return q;
    }
    ~Shard() {
      agg.reset();
      store.reset();
      if (!dir.empty()) std::filesystem::remove_all(dir);
    }
  };

  // Every metric of random queries, merged from the shards' shares, against the reference.
  void CheckShares(uint32_t seed, int cases) {
    std::mt19937 rng(seed);
    for (int c = 0; c < cases; ++c) {
      const RequestsQuery q = RandomQuery(&rng, "org0");
      for (RequestsMetric m : kAllMetrics) {
        std::vector<RequestsShare> shares;
        for (const Shard& s : shards_) {
          auto share = CollectRequests(*s.store, *s.directory, m, s.Narrow(q));
          ASSERT_TRUE(share.has_value()) << share.error().message;
          shares.push_back(std::move(*share));
        }
        std::string ctx = "case " + std::to_string(c) + " metric " +
                          std::to_string(static_cast<int>(m)) + " " + FormatDay(q.start) + ".." +
                          FormatDay(q.end) + (q.agent_name ? " agent=" + *q.agent_name : "") +
                          (q.project_id ? " project=" + *q.project_id : "");
        ExpectSame(ref_.Run(m, q), MergeRequests(m, q, shares), ctx);
        // One shard holding every workspace answers alike, whole or as one share.
        RequestsQuery all = q;
        for (const Shard& s : shards_) {
          RequestsQuery n = s.Narrow(q);
          all.workspace_scopes.insert(all.workspace_scopes.end(), n.workspace_scopes.begin(),
                                      n.workspace_scopes.end());
        }
        auto whole = RunRequests(*whole_.store, *whole_.directory, m, all);
        ASSERT_TRUE(whole.has_value());
        ExpectSame(ref_.Run(m, q), *whole, ctx + " (one store keyed per workspace)");
        if (HasFatalFailure()) return;
      }
    }
  }

  std::list<Shard> shards_;  // a list: shards never move
  Shard whole_;

  // A random query: some of the organizations (`fallback` when none), sometimes a project or an
  // agent name (a current, a former or an unknown one), a range of up to 50 days around the data.
  static RequestsQuery RandomQuery(std::mt19937* rng, const std::string& fallback) {
    auto pick = [rng](int k) { return static_cast<int>((*rng)() % static_cast<uint32_t>(k)); };
    RequestsQuery q;
    for (int o = 0; o < 3; ++o)
      if (pick(2)) q.organizations.push_back("org" + std::to_string(o));
    if (q.organizations.empty()) q.organizations.push_back(fallback);
    if (pick(3) == 0) q.project_id = "p" + std::to_string(pick(5));
    if (pick(3) == 0) q.agent_name = pick(4) == 0 ? "a3" : "name" + std::to_string(pick(7));
    q.start = kFirstDay - 3 + pick(kDays);
    q.end = std::min<DayNumber>(q.start + pick(50), kFirstDay + kDays + 2);
    if (pick(5) == 0) q.end = q.start;
    return q;
  }

  void CheckAll(const store::Directory& dir, uint32_t seed, int cases) {
    std::mt19937 rng(seed);
    for (int c = 0; c < cases; ++c) {
      const RequestsQuery q = RandomQuery(&rng, "org1");
      for (RequestsMetric m : kAllMetrics) {
        auto got = RunRequests(*store_, dir, m, q);
        ASSERT_TRUE(got.has_value()) << got.error().message;
        std::string ctx = "case " + std::to_string(c) + " metric " +
                          std::to_string(static_cast<int>(m)) + " " + FormatDay(q.start) + ".." +
                          FormatDay(q.end) + (q.agent_name ? " agent=" + *q.agent_name : "") +
                          (q.project_id ? " project=" + *q.project_id : "");
        ExpectSame(ref_.Run(m, q), *got, ctx);
        if (HasFatalFailure()) return;
      }
    }
  }

  Reference ref_;
  std::unique_ptr<store::Directory> dir_index_;
};

TEST_F(RequestsTest, MatchesBruteForceReference) {
  Generate(3000, 7);
  CheckAll(*dir_index_, 11, 60);
}

TEST_F(RequestsTest, SharesOfStoresKeyedPerWorkspaceMergeExactly) {
  // org0 is ws0 and ws4, on different shards; ws3 has no organization.
  shards_.emplace_back().Open(dir_.string() + "_a", {"ws0", "ws1", "ws3"});
  shards_.emplace_back().Open(dir_.string() + "_b", {"ws2", "ws4"});
  Generate(3000, 9);
  whole_.Open(dir_.string() + "_whole", {"ws0", "ws1", "ws2", "ws3", "ws4"});
  {
    // The whole store gets the same events in the same batches.
    std::vector<UsageEvent> batch;
    for (const UsageEvent& e : ref_.events) {
      batch.push_back(e);
      if (batch.size() == 97) {
        whole_.Apply(batch);
        batch.clear();
      }
    }
    whole_.Apply(batch);
  }
  CheckShares(13, 40);
}

// An agent name that only one share holds: the other share has no requests of it, but its
// newer email of the same user is still the label (a regression: it used to send nothing).
TEST_F(RequestsTest, AShareWithoutTheNamedAgentStillLabelsUsers) {
  shards_.emplace_back().Open(dir_.string() + "_a", {"ws0"});
  shards_.emplace_back().Open(dir_.string() + "_b", {"ws4"});
  whole_.Open(dir_.string() + "_whole", {"ws0", "ws4"});
  auto event = [](std::string id, std::string ws, std::string agent, std::string agent_name,
                  std::string email, DayNumber day) {
    UsageEvent e;
    e.id = std::move(id);
    e.source = "test";
    e.workspace_id = std::move(ws);
    e.organization_id = "org0";
    e.user_id = "u1";
    e.user_email = std::move(email);
    e.kind = EntityKind::kAgent;
    e.action = Action::kExecuted;
    e.entity_id = std::move(agent);
    e.entity_name = std::move(agent_name);
    e.time_ms = int64_t{day} * kDayMs;
    e.tokens = 5;
    return e;
  };
  std::vector<UsageEvent> batch = {
      event("e1", "ws0", "a-only", "solo", "old@example.com", kFirstDay + 1),
      event("e2", "ws4", "b-agent", "other", "new@example.com", kFirstDay + 2)};
  whole_.Apply(batch);
  Flush(&batch);
  RequestsQuery q;
  q.organizations = {"org0"};
  q.agent_name = "solo";
  q.start = kFirstDay;
  q.end = kFirstDay + 5;
  for (RequestsMetric m :
       {RequestsMetric::kAgentUsagePerUser, RequestsMetric::kTop10UsersByRequests}) {
    std::vector<RequestsShare> shares;
    for (const Shard& s : shards_) {
      auto share = CollectRequests(*s.store, *s.directory, m, s.Narrow(q));
      ASSERT_TRUE(share.has_value()) << share.error().message;
      shares.push_back(std::move(*share));
    }
    const RequestsResult merged = MergeRequests(m, q, shares);
    ExpectSame(ref_.Run(m, q), merged, "metric " + std::to_string(static_cast<int>(m)));
    ASSERT_EQ(m == RequestsMetric::kAgentUsagePerUser ? merged.usage.size() : merged.top.size(),
              1u);
  }
}

TEST_F(RequestsTest, AStoreIsBoundToOneRequestLayout) {
  ASSERT_TRUE(store_->BindRequestScopes(store::Store::RequestScopes::kOrganization));
  auto refused = store_->BindRequestScopes(store::Store::RequestScopes::kWorkspace);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_NE(refused.error().message.find("empty --data-dir"), std::string::npos);
}

TEST_F(RequestsTest, RequestDataWithoutARecordIsKeyedByOrganization) {
  Generate(100, 10);
  auto refused = store_->BindRequestScopes(store::Store::RequestScopes::kWorkspace);
  ASSERT_FALSE(refused);
  EXPECT_TRUE(store_->BindRequestScopes(store::Store::RequestScopes::kOrganization));
}

TEST_F(RequestsTest, DirectoryReloadedFromStoreAgrees) {
  Generate(2000, 8);
  auto reloaded = store::Directory::Load(*store_);
  ASSERT_TRUE(reloaded.has_value());
  CheckAll(**reloaded, 12, 30);
}

TEST_F(RequestsTest, DistinctUsersAreNotSumsOfDailyCounts) {
  // One user active on 30 days: summing daily distinct counts would say 30.
  std::vector<UsageEvent> evs;
  for (int d = 0; d < 30; ++d) {
    UsageEvent e;
    e.id = "d" + std::to_string(d);
    e.source = "t";
    e.workspace_id = "ws";
    e.organization_id = "org";
    e.project_id = "p";
    e.user_id = "same";
    e.entity_id = "agent";
    e.time_ms = int64_t{kFirstDay + d} * kDayMs;
    evs.push_back(e);
  }
  Apply(evs);
  RequestsQuery q{{"org"}, std::nullopt, kFirstDay, kFirstDay + 29, std::nullopt};
  for (auto m : {RequestsMetric::kTotalActiveUsers}) {
    auto r = RunRequests(*store_, *dir_index_, m, q);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->count, 1u);
  }
  auto per_project = RunRequests(*store_, *dir_index_, RequestsMetric::kAverageUsersPerProject, q);
  EXPECT_EQ(per_project->average, 1.0);
  auto per_agent = RunRequests(*store_, *dir_index_, RequestsMetric::kAverageUsersPerAgent, q);
  EXPECT_EQ(per_agent->average, 1.0);
}

TEST_F(RequestsTest, RanksTiedUsersByWholeLabelThenId) {
  // Tied request counts with labels that agree on their first 8 bytes (or more), are prefixes of
  // one another, hold bytes >= 0x80 or NUL, repeat (then the user id decides), or are absent
  // (then the label is the user id).
  const std::vector<std::string> emails = {"same.prefix.long@x",
                                           "same.prefix.lonf@x",
                                           "same.pre",
                                           "same.prefix",
                                           "same.pre\xc3\xa9",
                                           "same.pre\x01",
                                           "same.pr",
                                           std::string("same.pr\0", 8),
                                           std::string("same.pre\0x", 10),
                                           "",
                                           "same.prefix.long@x",
                                           "\xff\xfe",
                                           "Same",
                                           "same.pref\xff",
                                           "u9",
                                           "a"};
  std::vector<UsageEvent> batch;
  for (size_t i = 0; i < emails.size(); ++i) {
    const int requests = i % 5 == 0 ? 1 : 2;  // most users tie
    for (int k = 0; k < requests; ++k) {
      UsageEvent e;
      e.id = "t" + std::to_string(i) + "." + std::to_string(k);
      e.source = "t";
      e.workspace_id = "ws";
      e.organization_id = "org";
      e.project_id = "p";
      e.user_id = "u" + std::to_string(i);
      e.user_email = emails[i];
      e.entity_id = "agent";
      e.time_ms = int64_t{kFirstDay + k} * kDayMs;
      batch.push_back(std::move(e));
    }
  }
  Flush(&batch);
  RequestsQuery q{{"org"}, std::nullopt, kFirstDay, kFirstDay + 3, std::nullopt};
  for (RequestsMetric m :
       {RequestsMetric::kAgentUsagePerUser, RequestsMetric::kTop10UsersByRequests}) {
    auto got = RunRequests(*store_, *dir_index_, m, q);
    ASSERT_TRUE(got.has_value()) << got.error().message;
    ExpectSame(ref_.Run(m, q), *got, "metric " + std::to_string(static_cast<int>(m)));
  }
  auto usage = RunRequests(*store_, *dir_index_, RequestsMetric::kAgentUsagePerUser, q);
  ASSERT_EQ(usage->usage.size(), emails.size());
  // The rows view one shared buffer: a copy stays valid after the original is gone.
  RequestsResult copy = *usage;
  usage = RequestsResult{};
  EXPECT_EQ(copy.usage.front().user, "Same");
  EXPECT_EQ(copy.usage.back().user, "same.prefix.long@x");
}

TEST_F(RequestsTest, RejectsReversedAndTooLongRanges) {
  RequestsQuery q{{"org"}, std::nullopt, kFirstDay, kFirstDay - 1, std::nullopt};
  auto r = RunRequests(*store_, *dir_index_, RequestsMetric::kTotalActiveUsers, q);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().field, "endDate");
  q.end = kFirstDay + kRequestsMaxDays;
  r = RunRequests(*store_, *dir_index_, RequestsMetric::kTotalActiveUsers, q);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().field, "startDate");
}

TEST_F(RequestsTest, OrganizationsListedAndKnown) {
  Generate(300, 9);
  EXPECT_EQ(RequestOrganizations(*store_), (std::vector<std::string>{"org0", "org1", "org2"}));
  EXPECT_TRUE(OrganizationHasRequests(*store_, "org1"));
  EXPECT_FALSE(OrganizationHasRequests(*store_, "org"));
  EXPECT_FALSE(OrganizationHasRequests(*store_, "org3"));
}

TEST(RequestsMetricTest, ParsesEveryEndpointName) {
  EXPECT_EQ(ParseRequestsMetric("total-active-users"), RequestsMetric::kTotalActiveUsers);
  EXPECT_EQ(ParseRequestsMetric("agent-usage-per-user"), RequestsMetric::kAgentUsagePerUser);
  EXPECT_EQ(ParseRequestsMetric("top-10-agents-by-tokens"), RequestsMetric::kTop10AgentsByTokens);
  EXPECT_FALSE(ParseRequestsMetric("Total-Active-Users").has_value());
  EXPECT_FALSE(ParseRequestsMetric("").has_value());
}

}  // namespace
}  // namespace tally::query
