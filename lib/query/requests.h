#pragma once
// The engine behind the eleven GET /v1/analytics/requests/* endpoints
// (schemas/openapi.yaml): request counts, tokens, cost and exact distinct users,
// projects and agents of the agent.executed events of some organizations.
//
//   tally::query::RequestsQuery q;
//   q.organizations = {"org_7"};                 // what the key may see (narrowed by headers)
//   q.start = *tally::ParseDay("2026-01-01");
//   q.end = *tally::ParseDay("2026-03-31");
//   q.agent_name = "Support Agent";              // optional: the agents currently so named
//   tally::Result<tally::query::RequestsResult> r = tally::query::RunRequests(
//       store, directory, tally::query::RequestsMetric::kTotalActiveUsers, q);
//   uint64_t users = r->count;
//
// Semantics (docs/design.md "API semantics", docs/request-analytics.md):
//  - A request is an agent.executed event whose organization_id is in `organizations` (and whose
//    project_id equals `project_id` when set), on a UTC day in [start, end].
//  - Agents are (workspace, agent id); an agent's name is its latest name (its id when it never
//    had one). `agent_name` keeps only the agents whose current name equals it exactly; none
//    named so gives zeros and empty lists.
//  - Users are user ids; their label is the latest email (the id when none is known).
//  - Projects are (organization, project id); requests without a project count for everything
//    except the two project numbers.
//  - Distinct users, projects, agents and (agent, user) pairs are exact over any range: unions of
//    the per-bucket Roaring bitmaps or entry sets, never sums of per-bucket distinct counts.
//  - Rankings: value descending, then label ascending (byte order), then id ascending.
//  - Averages: requests / days in the range; users per project (agent) = sum over active
//    projects (agents) of their distinct users / number of active ones, 0 when none.
// Cost: a few point reads per stored bucket of DecomposeRange(start, end) per organization
// (per project or named agent where the metric needs that breakdown), independent of the number
// of events; per-day series scan the range's day slices.
//
// Thread-safe: any number of concurrent calls on one Store and Directory.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/calendar.h"
#include "common/result.h"

namespace tally::store {
class Store;
class Directory;
}  // namespace tally::store

namespace tally::query {

// The longest accepted range, in days.
inline constexpr int32_t kRequestsMaxDays = 366;

enum class RequestsMetric : uint8_t {
  kTotalActiveUsers,
  kTotalActiveProjects,
  kTotalActiveAgents,
  kAverageRequestsPerDay,
  kAverageUsersPerProject,
  kAverageUsersPerAgent,
  kTop10AgentsByRequests,
  kTop10UsersByRequests,
  kTop10AgentsByTokens,
  kTotalRequestsPerDay,
  kAgentUsagePerUser,
};

// The metric named by an endpoint path segment ("total-active-users"); nullopt if none. Pure
// and header-only (the http layer uses it without linking the engine).
inline std::optional<RequestsMetric> ParseRequestsMetric(std::string_view segment) {
  constexpr std::pair<std::string_view, RequestsMetric> kNames[] = {
      {"total-active-users", RequestsMetric::kTotalActiveUsers},
      {"total-active-projects", RequestsMetric::kTotalActiveProjects},
      {"total-active-agents", RequestsMetric::kTotalActiveAgents},
      {"average-requests-per-day", RequestsMetric::kAverageRequestsPerDay},
      {"average-users-per-project", RequestsMetric::kAverageUsersPerProject},
      {"average-users-per-agent", RequestsMetric::kAverageUsersPerAgent},
      {"top-10-agents-by-requests", RequestsMetric::kTop10AgentsByRequests},
      {"top-10-users-by-requests", RequestsMetric::kTop10UsersByRequests},
      {"top-10-agents-by-tokens", RequestsMetric::kTop10AgentsByTokens},
      {"total-requests-per-day", RequestsMetric::kTotalRequestsPerDay},
      {"agent-usage-per-user", RequestsMetric::kAgentUsagePerUser},
  };
  for (const auto& [name, metric] : kNames)
    if (name == segment) return metric;
  return std::nullopt;
}

struct RequestsQuery {
  std::vector<std::string> organizations;  // the scope; duplicates are ignored
  std::optional<std::string> project_id;   // narrows to one project of each organization
  DayNumber start = 0;                     // inclusive; start <= end
  DayNumber end = 0;
  std::optional<std::string> agent_name;  // exact current agent name; nullopt = every agent
  // For a store that keys request data per workspace (store::Store::RequestScopes::kWorkspace,
  // a group of instances): the (organization, workspace) pairs to read; pairs whose
  // organization is not in `organizations` are ignored. Empty: the store keys request data by
  // organization and every organization is read whole.
  std::vector<std::pair<std::string, std::string>> workspace_scopes = {};
};

struct RankedRow {
  std::string label;  // agent name or user label
  uint64_t value = 0;
};
struct DayRow {
  DayNumber day = 0;
  uint64_t requests = 0;
  uint64_t errors = 0;
};
struct UsageRow {
  // The user label. RunRequests points it into RequestsResult::text (one buffer for thousands of
  // rows instead of one string each); rows built elsewhere may point at any storage that
  // outlives them.
  std::string_view user;
  double cost = 0;
  uint64_t requests = 0;
  uint64_t tokens = 0;
};

// The answer; which member is filled depends on the metric.
struct RequestsResult {
  uint64_t count = 0;           // kTotalActive*
  double average = 0;           // kAverage*
  std::vector<RankedRow> top;   // kTop10* (at most 10 rows)
  std::vector<DayRow> days;     // kTotalRequestsPerDay: every day of the range, in order
  std::vector<UsageRow> usage;  // kAgentUsagePerUser: every active user, ranked by requests
  // The bytes `usage` labels point into; immutable and shared by copies of the result, so
  // copies and moves keep the rows valid.
  std::shared_ptr<const std::string> text;
};

// kInvalidArgument (field startDate / endDate) for start > end or a range longer than
// kRequestsMaxDays. Never fails on stored data (malformed slices are skipped).
Result<RequestsResult> RunRequests(const store::Store& store, const store::Directory& directory,
                                   RequestsMetric metric, const RequestsQuery& query);

// One instance's share of a request whose organizations are spread over several instances of a
// group: what that instance's stores hold of the query's workspace_scopes, in a form that merges
// exactly with the other instances' shares. Users are user ids (never dense indexes, which
// differ between instances); agents are disjoint between shares (an agent is a workspace's, and
// a workspace is one instance's), so per-agent numbers add up and top-10 candidates suffice;
// users and projects span shares, so theirs come whole. Which members are filled depends on the
// metric (the same as RequestsResult's).
struct RequestsShare {
  struct User {
    std::string id;
    uint64_t requests = 0;
    uint64_t tokens = 0;
    int64_t cost_nanos = 0;
    // The latest email among the share's events (the label), or none.
    std::optional<std::string> email;
    int64_t email_time_ms = 0;
    std::string email_scope;  // the scope it came from: ties of time go to the greater one
  };
  struct Agent {
    std::string name, workspace, id;
    uint64_t value = 0;  // requests or tokens, as the metric ranks
  };
  struct Project {
    std::string organization, id;
    std::vector<std::string> users;  // sorted
  };
  uint64_t requests = 0;              // kAverageRequestsPerDay
  uint64_t agents = 0;                // kTotalActiveAgents, kAverageUsersPerAgent: active agents
  uint64_t agent_users = 0;           // kAverageUsersPerAgent: sum of their distinct users
  std::vector<std::string> user_ids;  // kTotalActiveUsers: sorted
  // kTop10UsersByRequests, kAgentUsagePerUser: every active user, and every user with an email
  // in the share's scopes (requests 0: a label for a user active in another share), by id.
  std::vector<User> users;
  std::vector<Agent> top_agents;  // kTop10Agents*: the share's own top 10
  std::vector<Project> projects;  // kTotalActiveProjects (users empty), kAverageUsersPerProject
  std::vector<DayRow> days;       // kTotalRequestsPerDay: days with requests, in order
};

// The share of `query` held by this store (RunRequests' errors).
Result<RequestsShare> CollectRequests(const store::Store& store, const store::Directory& directory,
                                      RequestsMetric metric, const RequestsQuery& query);
// The answer of `query` from every instance's share: the same result RunRequests gives on one
// store holding all of them. `query` is only read for its range.
RequestsResult MergeRequests(RequestsMetric metric, const RequestsQuery& query,
                             const std::vector<RequestsShare>& shares);

// True if any request of `organization` was ever stored.
bool OrganizationHasRequests(const store::Store& store, std::string_view organization);

// Every organization with stored requests, sorted (the scope of an admin key). One seek per
// organization.
std::vector<std::string> RequestOrganizations(const store::Store& store);

}  // namespace tally::query
