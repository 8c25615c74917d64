#pragma once
// A deliberately simple reference model of the GeneXus request-analytics endpoints
// (GET /v1/analytics/requests/<name>), for end-to-end tests; and a tallyd started with
// organization-scoped API keys (OrgTallyd).
//
//   tally::integration::RequestsReference ref;
//   for (const std::string& line : ndjson_lines) ref.Add(line);  // exactly what went to Kafka
//   tally::integration::ReqQuery q;
//   q.organizations = std::set<std::string>{"org_1"};           // nullopt: every organization
//   q.start_date = "2026-02-01"; q.end_date = "2026-02-28";
//   nlohmann::json want = ref.Answer("top-10-agents-by-requests", q);
//   std::string diff = DiffRequestsJson(got, want);              // "" when equal
//
// It shares no code with tally: validation is the workspace-metrics reference's RefValidate
// (nlohmann::json), the extra fields are read with nlohmann::json, and every answer is a scan
// over the accepted event list. It is meant to be obviously right rather than fast.
//
// Semantics (docs/design.md, docs/request-analytics.md):
//  - Requests are accepted `agent.executed` events. Invalid lines are dropped; the first
//    occurrence of a (source, id) pair wins (the test data keeps every duplicate inside the
//    dedupe window, so a plain set is exact).
//  - Visible: data.organization_id non-empty and in the query's organizations (nullopt = all);
//    with a project, data.project_id equal to it. Day = UTC date of `time`, range inclusive.
//  - Agent = (workspace_id, agent.id); its current name is the agent.name of its latest event
//    (any agent.* type, any organization, any time; ties: later in the log) that carried a
//    non-empty name, else the agent id. A non-empty agent_name keeps only requests to agents
//    whose current name equals it exactly.
//  - User = data.user.id; label = email of the user's latest event (any type, any workspace;
//    ties: later in the log) that carried a non-empty email, else the user id.
//  - Project = (organization_id, project_id); requests without project_id count for everything
//    except the project-based numbers.
//  - Orders: agents by value desc, name asc, (workspace, agent id) asc; users by requests desc,
//    label asc, user id asc. Top lists keep 10 entries; agent-usage-per-user keeps every user.
//
// Not thread-safe for concurrent Add(); Answer() is const and may run concurrently.

#include <array>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "harness.h"
#include "reference.h"

namespace tally::integration {

// Every endpoint name under /v1/analytics/requests/.
inline constexpr std::array<const char*, 11> kRequestEndpoints = {
    "total-active-users",        "total-active-projects",     "total-active-agents",
    "average-requests-per-day",  "average-users-per-project", "average-users-per-agent",
    "top-10-agents-by-requests", "top-10-users-by-requests",  "top-10-agents-by-tokens",
    "total-requests-per-day",    "agent-usage-per-user"};

struct ReqQuery {
  std::optional<std::set<std::string>> organizations;  // nullopt: every organization (admin)
  std::optional<std::string> project_id;               // the project header, when sent
  std::string start_date;                              // "YYYY-MM-DD", inclusive
  std::string end_date;                                // "YYYY-MM-DD", inclusive
  std::string agent_name;                              // "" = no filter
};

// One accepted event (any type), reduced to what the request analytics read.
struct ReqEvent {
  std::string type;  // "agent.executed", ...
  std::string workspace_id;
  std::string organization_id;  // "" when absent
  std::string project_id;       // "" when absent
  std::string user_id;
  std::string email;       // "" when absent
  std::string agent_id;    // "" when the event has no data.agent.id
  std::string agent_name;  // "" when absent
  int64_t time_ms = 0;
  int64_t day = 0;  // UTC days since 1970-01-01
  int64_t tokens = 0;
  double cost_usd = 0;
  bool error = false;
};

class RequestsReference {
 public:
  // Feeds one raw message, exactly as produced to Kafka.
  RefVerdict Add(std::string_view line);

  // The expected 200 body of endpoint `name` (one of kRequestEndpoints) for `q`.
  nlohmann::json Answer(std::string_view name, const ReqQuery& q) const;
  // Every endpoint at once (one scan): name -> body.
  std::map<std::string, nlohmann::json> AnswerAll(const ReqQuery& q) const;

  // The current name of agent (workspace, agent id), or the id when it never carried a name.
  std::string AgentName(const std::string& workspace_id, const std::string& agent_id) const;
  // The label of a user in the scope of `q`: the latest email carried by events of the scope's
  // organizations, or the id.
  std::string UserLabel(const std::string& user_id, const ReqQuery& q) const;

  // Current names of the agents with requests visible to `q` (agent_name ignored), busiest
  // first (ties by name).
  std::vector<std::string> BusyAgentNames(const ReqQuery& q) const;
  // Names carried by some agent with requests visible to `q` that are no agent's current name,
  // those of the busiest such agents first.
  std::vector<std::string> FormerAgentNames(const ReqQuery& q) const;
  // Projects (non-empty project_id) with requests in `organization`, busiest first.
  std::vector<std::string> BusyProjects(const std::string& organization) const;
  // Organizations with at least one request.
  std::set<std::string> Organizations() const;

  const std::vector<ReqEvent>& events() const { return events_; }
  size_t accepted() const { return events_.size(); }
  size_t invalid() const { return invalid_; }
  size_t duplicates() const { return duplicates_; }
  size_t refused() const { return refused_; }

 private:
  // Requests visible to `q` in its range, agent_name applied when `apply_agent_name`.
  std::vector<const ReqEvent*> Select(const ReqQuery& q, bool apply_agent_name) const;
  std::map<std::pair<std::string, std::string>, std::string> CurrentNames() const;
  std::map<std::string, std::string> UserLabels(const ReqQuery& q) const;

  std::vector<ReqEvent> events_;
  std::set<std::pair<std::string, std::string>> seen_;  // (source, id)
  RefBindings bindings_;
  size_t invalid_ = 0;
  size_t duplicates_ = 0;
  size_t refused_ = 0;
};

// Compares a response body with the reference's: the same keys and array lengths, strings and
// integers exactly (an expected integer must be a JSON integer), expected doubles within a
// relative tolerance of 1e-9 (any JSON number). Returns "" or the first difference with its
// path ("top10Agents[3].totalRequests: got 7, want 8").
std::string DiffRequestsJson(const nlohmann::json& got, const nlohmann::json& want);

// ---------------------------------------------------------------------------------------------
// tallyd with organization-scoped keys, on a Stack's broker.

struct OrgKeySpec {
  static OrgKeySpec Holding(std::string name, std::string token,
                            std::vector<std::string> organizations) {
    OrgKeySpec k;
    k.name = std::move(name);
    k.token = std::move(token);
    k.organizations = std::move(organizations);
    return k;
  }
  static OrgKeySpec Admin(std::string name, std::string token) {
    OrgKeySpec k = Holding(std::move(name), std::move(token), {});
    k.admin = true;
    return k;
  }
  std::string name;
  std::string token;
  std::vector<std::string> organizations;
  std::map<std::string, std::string> workspaces;  // workspace id -> "owner" | "member"
  bool admin = false;
};

// The keys file text (docs/design.md "Access") for `keys`.
std::string OrgKeysToml(const std::vector<OrgKeySpec>& keys);

// Runs tallyd as the harness's Stack does (same flags, --now Stack::kNow, cache off), but with
// a keys file of OrgKeySpec. Uses the stack's broker, producer, HTTP client (pointed at this
// tallyd) and ingest-state probe.
class OrgTallyd {
 public:
  explicit OrgTallyd(Stack* stack) : stack_(stack) {}
  ~OrgTallyd();

  // The stack's broker must be running.
  ::testing::AssertionResult Start(const std::vector<OrgKeySpec>& keys);
  // Polls /readyz until every partition's next_offset equals its high watermark.
  ::testing::AssertionResult WaitForCatchUp(Millis timeout);
  // Produces `lines` in chunks, waiting for catch-up after each one (the embedded broker keeps
  // only the newest 5 MB of a partition).
  ::testing::AssertionResult ProducePaced(const std::vector<std::string>& lines,
                                          const std::vector<std::string>& keys, size_t chunk,
                                          Millis catch_up_timeout);
  Process& process() { return tallyd_; }

 private:
  Stack* stack_;
  Process tallyd_;
};

}  // namespace tally::integration
