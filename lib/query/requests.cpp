#include "query/requests.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <map>
#include <tuple>
#include <utility>

#include "common/saturating.h"
#include "query/internal/requests_plan.h"
#include "query/internal/requests_rank.h"
#include "query/internal/requests_reader.h"
#include "query/range.h"
#include "store/bitmap.h"
#include "store/codec.h"
#include "store/directory.h"
#include "store/store.h"

// The engine: one Plan per request (internal/requests_plan.h), per-thread accumulators and
// rankings (internal/requests_rank.h); MergeRequests is in requests_merge.cpp.
namespace tally::query {
namespace {

using internal::Accumulator;
using internal::DaysOf;
using internal::EmptyDays;
using internal::Plan;
using internal::RankAll;
using internal::RankKey;
using internal::Scope;
using internal::TopIndexes;
using store::kAllAgents;

thread_local Accumulator tl_users;
thread_local Accumulator tl_agents;

// Active agents of the scope, accumulated into tl_agents (requests and tokens per agent).
void AccumulateAgents(const Plan& plan) {
  Accumulator& acc = tl_agents;
  acc.Begin();
  plan.ForEachSlice([&](const Scope&, uint32_t agent, const store::SliceView& s) {
    if (agent != kAllAgents) {
      if (s.totals().requests == 0) return;
      Accumulator::Entry& e = acc.At(agent);
      SatAddTo(&e.requests, s.totals().requests);
      SatAddTo(&e.tokens, s.totals().tokens);
      return;
    }
    for (size_t i = 0; i < s.agent_count(); ++i) {
      store::SliceAgent a = s.agent(i);
      Accumulator::Entry& e = acc.At(a.agent);
      SatAddTo(&e.requests, a.requests);
      SatAddTo(&e.tokens, a.tokens);
    }
  });
}

void AccumulateUsers(const Plan& plan) {
  Accumulator& acc = tl_users;
  acc.Begin();
  plan.ForEachSlice([&](const Scope&, uint32_t, const store::SliceView& s) {
    for (size_t i = 0; i < s.user_count(); ++i) {
      store::SliceUser u = s.user(i);
      Accumulator::Entry& e = acc.At(u.user);
      SatAddTo(&e.requests, u.requests);
      SatAddTo(&e.tokens, u.tokens);
      SatAddTo(&e.cost_nanos, u.cost_nanos);
    }
  });
}

uint64_t CountActive(const Accumulator& acc) {
  uint64_t n = 0;
  for (uint32_t i : acc.touched) n += acc.entries[i].requests > 0 ? 1 : 0;
  return n;
}

// Every active project of the scope: ((org, project) -> union of its users).
std::map<std::pair<std::string, std::string>, store::UserBitmap> ProjectUsers(const Plan& plan) {
  std::map<std::pair<std::string, std::string>, store::UserBitmap> out;
  for (const Scope& scope : plan.scopes()) {
    for (uint32_t agent : plan.agents()) {
      const std::vector<std::string> projects = plan.ScopeProjects(scope.key, agent);
      for (const std::string& p : projects) {
        store::UserBitmap users;
        std::string_view pv = p;
        plan.OrUsers(scope.key, agent, &pv, &users);
        if (users.IsEmpty()) continue;
        out[{scope.org, p}].Or(users);
      }
    }
  }
  return out;
}

// Over the active projects of the scope: (sum of their distinct users, their number), the
// same numbers as ProjectUsers. A project is (org, project id); its users are the union of its
// users bitmaps over every agent selector and bucket. All the bitmaps are read with one
// MultiGet and each project's union is computed once (RequestsReader), instead of one point
// read and one eager OR per bitmap: for every project of whole organizations (hundreds of
// bitmaps) that is 1.4x faster; for one project or one named agent's few projects, the reader's
// own snapshot, iterator and batch cost more than they save, so those use ProjectUsers (the
// caller picks: this one serves neither a project header nor an agent filter).
std::pair<uint64_t, uint64_t> ProjectUserSums(const store::Store& store, const Plan& plan) {
  internal::RequestsReader reader(store);
  std::map<std::pair<std::string, std::string>, std::vector<std::string>> keys;
  for (const Scope& scope : plan.scopes()) {
    for (uint32_t agent : plan.agents()) {
      for (const std::string& p : reader.ProjectsOf(scope.key, agent)) {
        std::vector<std::string>& k = keys[{scope.org, p}];
        const std::string_view pv = p;
        for (const BucketRef& b : plan.buckets()) {
          store::RequestsUsersKey(scope.key, agent, &pv, b.granularity, b.bucket,
                                  &k.emplace_back());
        }
      }
    }
  }
  std::vector<std::vector<std::string>> groups;
  groups.reserve(keys.size());
  for (auto& [project, k] : keys) groups.push_back(std::move(k));
  uint64_t sum = 0, n = 0;
  for (uint64_t users : reader.UnionCardinalities(groups)) {
    if (users == 0) continue;
    sum += users;
    ++n;
  }
  return {sum, n};
}

// The active projects of the scope, (org, project id), sorted.
std::vector<std::pair<std::string, std::string>> ActiveProjects(const Plan& plan) {
  std::vector<std::pair<std::string, std::string>> active;
  for (const Scope& scope : plan.scopes()) {
    for (uint32_t agent : plan.agents()) {
      const std::vector<std::string> projects = plan.ScopeProjects(scope.key, agent);
      for (const std::string& p : projects) {
        if (plan.ProjectActive(scope.key, agent, p)) active.emplace_back(scope.org, p);
      }
    }
  }
  std::sort(active.begin(), active.end());
  active.erase(std::unique(active.begin(), active.end()), active.end());
  return active;
}

std::vector<RankedRow> TopAgents(const Plan& plan, const store::Directory& dir, bool by_tokens) {
  AccumulateAgents(plan);
  store::Directory::Reader r(dir);
  auto value = [by_tokens](const Accumulator::Entry& e) {
    return by_tokens ? e.tokens : e.requests;
  };
  auto label = [&r](uint32_t i) { return r.AgentName(i); };
  auto id = [&r](uint32_t i) { return r.AgentRef(i); };
  std::vector<RankedRow> out;
  for (uint32_t i : TopIndexes(tl_agents, 10, value, label, id)) {
    out.push_back({std::string(r.AgentName(i)), value(tl_agents.entries[i])});
  }
  return out;
}

}  // namespace

bool OrganizationHasRequests(const store::Store& store, std::string_view organization) {
  std::string prefix;
  store::RequestsOrgPrefix(organization, &prefix);
  return store.NewReadView()->HasSliceWithPrefix(prefix);
}

std::vector<std::string> RequestOrganizations(const store::Store& store) {
  std::vector<std::string> out;
  auto view = store.NewReadView();
  std::string prefix;
  store::RequestsOrgPrefix("", &prefix);
  prefix.resize(1);  // the tag alone
  std::string start = prefix;
  for (;;) {
    bool found = false;
    view->ScanSliceKeys(prefix, start, [&](std::string_view key) {
      std::string_view rest = key.substr(1), org;
      if (store::GetLengthPrefixed(&rest, &org)) {
        out.emplace_back(org);
        found = true;
      }
      return false;
    });
    if (!found) break;
    store::RequestsOrgPrefix(out.back(), &start);
    start.push_back('\xff');
  }
  return out;
}

namespace {

Status CheckRange(const RequestsQuery& query) {
  if (query.start > query.end) {
    return Fail(ErrorCode::kInvalidArgument,
                "The endDate must be a date after or equal to startDate.", "endDate");
  }
  if (int64_t{query.end} - query.start + 1 > kRequestsMaxDays) {
    return Fail(
        ErrorCode::kInvalidArgument,
        "The date range must not be longer than " + std::to_string(kRequestsMaxDays) + " days.",
        "startDate");
  }
  return Ok();
}

store::UserBitmap ActiveUsers(const Plan& plan) {
  store::UserBitmap users;
  for (const Scope& scope : plan.scopes())
    for (uint32_t agent : plan.agents()) plan.OrUsers(scope.key, agent, plan.project(), &users);
  return users;
}

uint64_t RequestsTotal(const Plan& plan) {
  uint64_t requests = 0;
  plan.ForEachSlice([&](const Scope&, uint32_t, const store::SliceView& s) {
    SatAddTo(&requests, s.totals().requests);
  });
  return requests;
}

// Over the active agents of the scope: (sum of their distinct users, their number).
std::pair<uint64_t, uint64_t> AgentUserSums(const Plan& plan) {
  uint64_t pairs = 0, n = 0;
  if (!plan.filtered()) {
    // Sum over agents of their distinct users = distinct (agent, user) pairs.
    store::UserBitmap all_pairs;
    std::string key;
    for (const Scope& scope : plan.scopes()) {
      for (const BucketRef& b : plan.buckets()) {
        store::RequestsPairsKey(scope.key, plan.project(), b.granularity, b.bucket, &key);
        plan.view().OrBitmap(key, &all_pairs);
      }
    }
    pairs = all_pairs.Cardinality();
    AccumulateAgents(plan);
    n = CountActive(tl_agents);
  } else {
    for (uint32_t agent : plan.agents()) {
      store::UserBitmap users;
      for (const Scope& scope : plan.scopes())
        plan.OrUsers(scope.key, agent, plan.project(), &users);
      if (users.IsEmpty()) continue;
      pairs += users.Cardinality();
      ++n;
    }
  }
  return {pairs, n};
}

// Adds the scope's requests and errors per day of the range into `days` (EmptyDays).
void AddDays(const Plan& plan, const RequestsQuery& query, std::vector<DayRow>* days) {
  std::string start, prefix;
  for (const Scope& scope : plan.scopes()) {
    for (uint32_t agent : plan.agents()) {
      store::RequestsSliceKey(scope.key, agent, plan.project(), Granularity::kDay, query.start,
                              &start);
      prefix.assign(start, 0, start.size() - 4);  // without the bucket
      plan.view().ScanSlices(prefix, start, [&](std::string_view key, const store::SliceView& s) {
        Granularity g;
        int32_t day;
        if (!store::RequestsKeyBucket(key, &g, &day) || day > query.end) return false;
        DayRow& row = (*days)[static_cast<size_t>(day - query.start)];
        SatAddTo(&row.requests, s.totals().requests);
        SatAddTo(&row.errors, s.totals().errors);
        return true;
      });
    }
  }
}

// Accumulates the plan's users and calls rank(value, label, id) with the accessors TopIndexes and
// RankAll rank them by (requests, label, id). Labels stay valid during the call; the emails shown
// come only from the scope's own organizations' events.
template <typename Rank>
void RankUsers(const Plan& plan, const store::Directory& directory, Rank rank) {
  AccumulateUsers(plan);
  store::Directory::Reader r(directory);
  const std::vector<uint32_t> scope = r.Organizations(plan.scope_keys());
  auto value = [](const Accumulator::Entry& e) { return e.requests; };
  auto label = [&r, &scope](uint32_t i) { return r.UserLabel(scope, i); };
  auto id = [&r](uint32_t i) { return r.UserId(i); };
  rank(value, label, id);
}

// The per-user usage rows of `order` (users ranked by RankAll), into result->usage.
void SetUsageRows(const std::vector<RankKey>& order, RequestsResult* result) {
  // Every label copied into one buffer (no allocation per row), then viewed by the rows.
  size_t bytes = 0;
  for (const RankKey& k : order) bytes += k.label.size();
  auto text = std::make_shared<std::string>();
  text->reserve(bytes);
  for (const RankKey& k : order) text->append(k.label);
  result->usage.resize(order.size());
  const std::string_view all = *text;
  size_t at = 0;
  for (size_t i = 0; i < order.size(); ++i) {
    const Accumulator::Entry& e = tl_users.entries[order[i].index];
    const size_t n = order[i].label.size();
    result->usage[i] = {all.substr(at, n), static_cast<double>(e.cost_nanos) / 1e9, e.requests,
                        e.tokens};
    at += n;
  }
  result->text = std::move(text);
}

}  // namespace

Result<RequestsResult> RunRequests(const store::Store& store, const store::Directory& directory,
                                   RequestsMetric metric, const RequestsQuery& query) {
  if (Status s = CheckRange(query); !s) return std::unexpected(s.error());
  const int64_t days = DaysOf(query);
  RequestsResult result;
  Plan plan(store, directory, query);
  if (plan.agents().empty()) {  // no agent currently has that name: nothing matches
    if (metric == RequestsMetric::kTotalRequestsPerDay) result.days = EmptyDays(query);
    return result;
  }

  switch (metric) {
    case RequestsMetric::kTotalActiveUsers:
      result.count = ActiveUsers(plan).Cardinality();
      break;
    case RequestsMetric::kTotalActiveProjects:
      result.count = ActiveProjects(plan).size();
      break;
    case RequestsMetric::kTotalActiveAgents:
      AccumulateAgents(plan);
      result.count = CountActive(tl_agents);
      break;
    case RequestsMetric::kAverageRequestsPerDay:
      result.average = static_cast<double>(RequestsTotal(plan)) / static_cast<double>(days);
      break;
    case RequestsMetric::kAverageUsersPerProject: {
      uint64_t sum = 0, n = 0;
      if (!plan.filtered() && !plan.project()) {
        std::tie(sum, n) = ProjectUserSums(store, plan);
      } else {
        for (auto& [project, users] : ProjectUsers(plan)) {
          sum += users.Cardinality();
          ++n;
        }
      }
      result.average = n ? static_cast<double>(sum) / static_cast<double>(n) : 0;
      break;
    }
    case RequestsMetric::kAverageUsersPerAgent: {
      const auto [pairs, n] = AgentUserSums(plan);
      result.average = n ? static_cast<double>(pairs) / static_cast<double>(n) : 0;
      break;
    }
    case RequestsMetric::kTop10AgentsByRequests:
      result.top = TopAgents(plan, directory, /*by_tokens=*/false);
      break;
    case RequestsMetric::kTop10AgentsByTokens:
      result.top = TopAgents(plan, directory, /*by_tokens=*/true);
      break;
    case RequestsMetric::kTop10UsersByRequests:
      RankUsers(plan, directory, [&result](auto value, auto label, auto id) {
        for (uint32_t i : TopIndexes(tl_users, 10, value, label, id)) {
          result.top.push_back({std::string(label(i)), tl_users.entries[i].requests});
        }
      });
      break;
    case RequestsMetric::kAgentUsagePerUser:
      RankUsers(plan, directory, [&result](auto value, auto label, auto id) {
        SetUsageRows(RankAll(tl_users, value, label, id), &result);
      });
      break;
    case RequestsMetric::kTotalRequestsPerDay:
      result.days = EmptyDays(query);
      AddDays(plan, query, &result.days);
      break;
  }
  return result;
}

Result<RequestsShare> CollectRequests(const store::Store& store, const store::Directory& directory,
                                      RequestsMetric metric, const RequestsQuery& query) {
  if (Status s = CheckRange(query); !s) return std::unexpected(s.error());
  RequestsShare share;
  Plan plan(store, directory, query);
  // No agent of that name here: this share has no requests. But a user active in another share
  // may take its label from an email of this share's scopes, so those still go along.
  if (plan.agents().empty() && metric != RequestsMetric::kTop10UsersByRequests &&
      metric != RequestsMetric::kAgentUsagePerUser) {
    return share;
  }
  switch (metric) {
    case RequestsMetric::kTotalActiveUsers: {
      store::Directory::Reader r(directory);
      ActiveUsers(plan).ForEach([&](uint32_t i) { share.user_ids.emplace_back(r.UserId(i)); });
      std::sort(share.user_ids.begin(), share.user_ids.end());
      break;
    }
    case RequestsMetric::kTotalActiveProjects:
      for (auto& [org, p] : ActiveProjects(plan)) {
        share.projects.push_back({std::move(org), std::move(p), {}});
      }
      break;
    case RequestsMetric::kTotalActiveAgents:
      AccumulateAgents(plan);
      share.agents = CountActive(tl_agents);
      break;
    case RequestsMetric::kAverageRequestsPerDay:
      share.requests = RequestsTotal(plan);
      break;
    case RequestsMetric::kAverageUsersPerProject: {
      store::Directory::Reader r(directory);
      for (auto& [project, users] : ProjectUsers(plan)) {
        RequestsShare::Project& out = share.projects.emplace_back();
        out.organization = project.first;
        out.id = project.second;
        users.ForEach([&](uint32_t i) { out.users.emplace_back(r.UserId(i)); });
        std::sort(out.users.begin(), out.users.end());
      }
      break;
    }
    case RequestsMetric::kAverageUsersPerAgent:
      std::tie(share.agent_users, share.agents) = AgentUserSums(plan);
      break;
    case RequestsMetric::kTop10AgentsByRequests:
    case RequestsMetric::kTop10AgentsByTokens: {
      const bool by_tokens = metric == RequestsMetric::kTop10AgentsByTokens;
      AccumulateAgents(plan);
      store::Directory::Reader r(directory);
      auto value = [by_tokens](const Accumulator::Entry& e) {
        return by_tokens ? e.tokens : e.requests;
      };
      auto label = [&r](uint32_t i) { return r.AgentName(i); };
      auto id = [&r](uint32_t i) { return r.AgentRef(i); };
      for (uint32_t i : TopIndexes(tl_agents, 10, value, label, id)) {
        const auto [ws, agent] = r.AgentRef(i);
        share.top_agents.push_back({std::string(r.AgentName(i)), std::string(ws),
                                    std::string(agent), value(tl_agents.entries[i])});
      }
      break;
    }
    case RequestsMetric::kTop10UsersByRequests:
    case RequestsMetric::kAgentUsagePerUser: {
      AccumulateUsers(plan);
      store::Directory::Reader r(directory);
      const std::vector<uint32_t> scope = r.Organizations(plan.scope_keys());
      for (uint32_t i : tl_users.touched) {
        const Accumulator::Entry& e = tl_users.entries[i];
        if (e.requests == 0) continue;
        RequestsShare::User& u = share.users.emplace_back();
        u.id = r.UserId(i);
        u.requests = e.requests;
        u.tokens = e.tokens;
        u.cost_nanos = e.cost_nanos;
      }
      // A user's label is the latest email of the scope's events, requests or not, and those
      // may be another share's: every email of the share goes along.
      std::sort(share.users.begin(), share.users.end(),
                [](const auto& a, const auto& b) { return a.id < b.id; });
      const size_t active = share.users.size();
      r.ForEachUserEmail(scope, [&](uint32_t i, const store::Directory::Email& email) {
        const std::string_view id = r.UserId(i);
        auto it = std::lower_bound(
            share.users.begin(), share.users.begin() + active, id,
            [](const RequestsShare::User& u, std::string_view v) { return u.id < v; });
        RequestsShare::User* u;
        if (it != share.users.begin() + active && it->id == id) {
          u = &*it;
        } else {
          u = &share.users.emplace_back();
          u->id = id;
        }
        u->email = std::string(email.email);
        u->email_time_ms = email.time_ms;
        u->email_scope = email.organization;
      });
      std::sort(share.users.begin(), share.users.end(),
                [](const auto& a, const auto& b) { return a.id < b.id; });
      break;
    }
    case RequestsMetric::kTotalRequestsPerDay: {
      std::vector<DayRow> days = EmptyDays(query);
      AddDays(plan, query, &days);
      for (const DayRow& d : days) {
        if (d.requests > 0 || d.errors > 0) share.days.push_back(d);
      }
      break;
    }
  }
  return share;
}

}  // namespace tally::query
