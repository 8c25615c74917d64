#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/saturating.h"
#include "query/internal/requests_plan.h"
#include "query/internal/requests_rank.h"
#include "query/requests.h"

// MergeRequests: the answer of one store holding every share, from the shares of a group's
// stores (CollectRequests).
namespace tally::query {

using internal::DaysOf;
using internal::EmptyDays;
using internal::SortRanked;

namespace {

// The users' rankings (top 10 by requests, or every user's usage) over the shares.
void MergeUsers(RequestsMetric metric, const std::vector<RequestsShare>& shares,
                RequestsResult* result) {
  // Each user's sums over the shares, and the latest email among them (ties: the greater
  // scope, as store::Directory's labels across organizations).
  std::map<std::string_view, RequestsShare::User> by_id;
  for (const RequestsShare& s : shares) {
    for (const RequestsShare::User& u : s.users) {
      RequestsShare::User& m = by_id[u.id];
      if (m.id.empty()) m.id = u.id;
      SatAddTo(&m.requests, u.requests);
      SatAddTo(&m.tokens, u.tokens);
      SatAddTo(&m.cost_nanos, u.cost_nanos);
      if (u.email && (!m.email || u.email_time_ms > m.email_time_ms ||
                      (u.email_time_ms == m.email_time_ms && u.email_scope > m.email_scope))) {
        m.email = u.email;
        m.email_time_ms = u.email_time_ms;
        m.email_scope = u.email_scope;
      }
    }
  }
  std::vector<const RequestsShare::User*> order;
  order.reserve(by_id.size());
  for (const auto& [id, u] : by_id) {
    if (u.requests > 0) order.push_back(&u);
  }
  auto label = [](const RequestsShare::User* u) {
    return std::string_view(u->email ? *u->email : u->id);
  };
  SortRanked(
      &order, [](const RequestsShare::User* u) { return u->requests; }, label,
      [](const RequestsShare::User* u) { return std::string_view(u->id); });
  if (metric == RequestsMetric::kTop10UsersByRequests) {
    for (size_t i = 0; i < order.size() && i < 10; ++i) {
      result->top.push_back({std::string(label(order[i])), order[i]->requests});
    }
    return;
  }
  size_t bytes = 0;
  for (const auto* u : order) bytes += label(u).size();
  auto text = std::make_shared<std::string>();
  text->reserve(bytes);
  for (const auto* u : order) text->append(label(u));
  const std::string_view all = *text;
  size_t at = 0;
  result->usage.reserve(order.size());
  for (const auto* u : order) {
    const size_t n = label(u).size();
    result->usage.push_back(
        {all.substr(at, n), static_cast<double>(u->cost_nanos) / 1e9, u->requests, u->tokens});
    at += n;
  }
  result->text = std::move(text);
}

}  // namespace

RequestsResult MergeRequests(RequestsMetric metric, const RequestsQuery& query,
                             const std::vector<RequestsShare>& shares) {
  RequestsResult result;
  switch (metric) {
    case RequestsMetric::kTotalActiveUsers: {
      std::vector<std::string_view> ids;
      for (const RequestsShare& s : shares)
        ids.insert(ids.end(), s.user_ids.begin(), s.user_ids.end());
      std::sort(ids.begin(), ids.end());
      result.count = static_cast<uint64_t>(std::unique(ids.begin(), ids.end()) - ids.begin());
      break;
    }
    case RequestsMetric::kTotalActiveProjects: {
      std::vector<std::pair<std::string_view, std::string_view>> all;
      for (const RequestsShare& s : shares)
        for (const auto& p : s.projects) all.emplace_back(p.organization, p.id);
      std::sort(all.begin(), all.end());
      result.count = static_cast<uint64_t>(std::unique(all.begin(), all.end()) - all.begin());
      break;
    }
    case RequestsMetric::kTotalActiveAgents:
      for (const RequestsShare& s : shares) SatAddTo(&result.count, s.agents);
      break;
    case RequestsMetric::kAverageRequestsPerDay: {
      uint64_t requests = 0;
      for (const RequestsShare& s : shares) SatAddTo(&requests, s.requests);
      result.average = static_cast<double>(requests) / static_cast<double>(DaysOf(query));
      break;
    }
    case RequestsMetric::kAverageUsersPerProject: {
      std::map<std::pair<std::string_view, std::string_view>, std::vector<std::string_view>> users;
      for (const RequestsShare& s : shares) {
        for (const auto& p : s.projects) {
          auto& u = users[{p.organization, p.id}];
          u.insert(u.end(), p.users.begin(), p.users.end());
        }
      }
      uint64_t sum = 0, n = 0;
      for (auto& [project, u] : users) {
        std::sort(u.begin(), u.end());
        const uint64_t distinct =
            static_cast<uint64_t>(std::unique(u.begin(), u.end()) - u.begin());
        if (distinct == 0) continue;
        sum += distinct;
        ++n;
      }
      result.average = n ? static_cast<double>(sum) / static_cast<double>(n) : 0;
      break;
    }
    case RequestsMetric::kAverageUsersPerAgent: {
      uint64_t pairs = 0, n = 0;
      for (const RequestsShare& s : shares) {
        SatAddTo(&pairs, s.agent_users);
        SatAddTo(&n, s.agents);
      }
      result.average = n ? static_cast<double>(pairs) / static_cast<double>(n) : 0;
      break;
    }
    case RequestsMetric::kTop10AgentsByRequests:
    case RequestsMetric::kTop10AgentsByTokens: {
      std::vector<const RequestsShare::Agent*> all;
      for (const RequestsShare& s : shares)
        for (const auto& a : s.top_agents) all.push_back(&a);
      SortRanked(
          &all, [](const RequestsShare::Agent* a) { return a->value; },
          [](const RequestsShare::Agent* a) { return std::string_view(a->name); },
          [](const RequestsShare::Agent* a) {
            return std::pair<std::string_view, std::string_view>(a->workspace, a->id);
          });
      for (size_t i = 0; i < all.size() && i < 10; ++i) {
        result.top.push_back({all[i]->name, all[i]->value});
      }
      break;
    }
    case RequestsMetric::kTop10UsersByRequests:
    case RequestsMetric::kAgentUsagePerUser:
      MergeUsers(metric, shares, &result);
      break;
    case RequestsMetric::kTotalRequestsPerDay: {
      result.days = EmptyDays(query);
      for (const RequestsShare& s : shares) {
        for (const DayRow& d : s.days) {
          if (d.day < query.start || d.day > query.end) continue;
          DayRow& row = result.days[static_cast<size_t>(d.day - query.start)];
          SatAddTo(&row.requests, d.requests);
          SatAddTo(&row.errors, d.errors);
        }
      }
      break;
    }
  }
  return result;
}

}  // namespace tally::query
