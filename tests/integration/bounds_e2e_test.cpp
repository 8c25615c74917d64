// Bounds on what one event may carry, end to end through Kafka and tallyd:
//  - event times before --min-event-time or past the clock plus --max-future are dead-lettered
//    ("time out of range") over Kafka and refused with a 400 naming the index over HTTP, and a
//    far-future event does not make later real events "late" under --late-events reject;
//  - a property test: random extreme measures (0, the maxima, just above them, 1e300, 1.7e308,
//    INT64_MAX and beyond, -0, NaN/Infinity spellings) are either rejected cleanly or counted
//    exactly, ~9,300 max-cost requests saturate cost_nanos (and /metrics counts it), and no
//    response of any endpoint family holds a negative number or a null where a number belongs.

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "harness.h"
#include "kafka/dead_letter.h"
#include "metrics_compare.h"

namespace tally::integration {
namespace {

using nlohmann::json;
using Headers = std::vector<std::pair<std::string, std::string>>;

constexpr const char* kAdminToken = "bounds-it-admin-token";
constexpr const char* kWs = "b0d50000-0000-4000-8000-00000000b0d5";
constexpr const char* kOrg = "org-bounds";

const Headers kAdmin = {{"Authorization", std::string("Bearer ") + kAdminToken}};

double Metric(Stack& stack, const char* name, const std::vector<std::string>& labels = {}) {
  return MetricSum(stack.MetricsText(), name, labels).value_or(0);
}

// One event as raw JSON text; `measures` is inserted verbatim into data (e.g. "\"tokens\": 5"),
// so that it can hold tokens nlohmann::json cannot write (NaN, 1e999, -0).
std::string Event(const std::string& id, const std::string& type, const std::string& time,
                  const std::string& user, const std::string& entity,
                  const std::string& measures = "") {
  const bool agent = type.rfind("agent.", 0) == 0;
  std::string s = "{\"specversion\": \"1.0\", \"id\": \"" + id +
                  "\", \"source\": \"it/bounds\", \"type\": \"" + type + "\", \"time\": \"" + time +
                  "\", \"data\": {\"workspace_id\": \"" + kWs + "\", \"organization_id\": \"" +
                  kOrg + "\", \"user\": {\"id\": \"" + user + "\", \"email\": \"" + user +
                  "@example.com\"}, \"" + (agent ? "agent" : "workflow") + "\": {\"id\": \"" +
                  entity + "\", \"name\": \"" + entity + "\", \"visibility\": \"workspace\"}";
  if (!measures.empty()) s += ", " + measures;
  return s + "}}";
}

// ----------------------------------------------------------------------------------------------
// Event time bounds.

TEST(EventTimeBoundsE2E, FarPastAndFarFutureAreRefusedAndNeverMakeLaterEventsLate) {
  Stack stack;
  stack.keys().push_back(KeySpec::Admin("admin", kAdminToken));
  ASSERT_TRUE(stack.StartBroker(1));
  // The harness runs tallyd at --now 2026-03-01T12:00:00Z with --max-future 1d.
  ASSERT_TRUE(stack.StartTallyd({"--late-events", "reject"}));

  const std::vector<std::string> lines = {
      Event("t-1", "agent.executed", "2026-02-20T10:00:00Z", "u-1", "agent-t"),
      Event("t-past", "agent.executed", "0000-01-01T00:00:00Z", "u-1", "agent-t"),
      Event("t-future", "agent.executed", "9999-12-31T23:59:59Z", "u-1", "agent-t"),
      Event("t-floor", "agent.executed", "1999-12-31T23:59:59Z", "u-1", "agent-t"),
      Event("t-skew", "agent.executed", "2026-03-02T12:00:00.001Z", "u-1", "agent-t"),
      // Real events after the far-future one: not late (the newest accepted time is Feb 20).
      Event("t-2", "agent.executed", "2026-02-21T10:00:00Z", "u-2", "agent-t"),
      Event("t-3", "agent.executed", "2026-02-27T10:00:00Z", "u-3", "agent-t"),
      Event("t-4", "agent.executed", "2026-03-02T12:00:00Z", "u-3", "agent-t"),  // at the skew
  };
  ASSERT_TRUE(stack.Produce(lines, std::vector<std::string>(lines.size(), kWs)));
  ASSERT_TRUE(stack.WaitForCatchUp(Millis(60000)));

  EXPECT_EQ(Metric(stack, "tally_events_applied_total"), 4.0);
  EXPECT_EQ(Metric(stack, "tally_dlq_produced_total"), 4.0);
  EXPECT_EQ(Metric(stack, "tally_events_rejected_total", {"reason=\"time_out_of_range\""}), 4.0);
  EXPECT_EQ(Metric(stack, "tally_events_rejected_total", {"reason=\"late_event\""}), 0.0);

  auto dlq = ReadTopic(stack.bootstrap(), Stack::kDlqTopic, Millis(30000));
  ASSERT_TRUE(dlq) << dlq.error().message;
  ASSERT_EQ(dlq->size(), 4u);
  std::set<std::string> payloads;
  for (const ConsumedMessage& m : *dlq) {
    const std::string reason = m.Header(kafka::kDeadLetterReasonHeader);
    EXPECT_NE(reason.find("time out of range"), std::string::npos) << reason;
    EXPECT_TRUE(reason.starts_with("time: ")) << reason;
    payloads.insert(m.value);
  }
  EXPECT_EQ(payloads, (std::set<std::string>{lines[1], lines[2], lines[3], lines[4]}));

  // Over HTTP: the same bounds, a 400 naming each index and the field; nothing published.
  const std::string batch = "[" + lines[5] + "," + lines[1] + "," + lines[2] + "]";
  Headers post = kAdmin;
  post.emplace_back("Content-Type", "application/cloudevents-batch+json");
  Result<HttpResponse> r = stack.http().Send("POST", "/v1/events", post, batch);
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->status, 400) << r->body;
  json body = json::parse(r->body, nullptr, false);
  ASSERT_EQ(body["errors"].size(), 2u) << r->body;
  for (int k = 0; k < 2; ++k) {
    const json& e = body["errors"][k];
    EXPECT_EQ(e["index"], k + 1) << r->body;
    EXPECT_EQ(e["field"], "time") << r->body;
    EXPECT_EQ(e["category"], "time_out_of_range") << r->body;
    EXPECT_NE(e["reason"].dump().find("time out of range"), std::string::npos) << r->body;
  }
  // A single in-range event is still accepted.
  post.back().second = "application/cloudevents+json";
  r = stack.http().Send("POST", "/v1/events", post,
                        Event("t-5", "agent.executed", "2026-02-28T10:00:00Z", "u-4", "agent-t"));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 202) << r->body;
}

// ----------------------------------------------------------------------------------------------
// Extreme measures.

constexpr double kMaxCount = 1e12;
constexpr double kMaxCost = 1e6;

// A measure's JSON token and what the parser makes of it.
struct Token {
  std::string text;
  bool valid_number = true;  // a JSON number (not NaN/Infinity/1e999/a string)
  double value = 0;          // when valid_number
};

std::vector<Token> Tokens() {
  std::vector<Token> t;
  for (const char* n : {"0", "-0", "-0.0", "1", "2.5", "1e6", "1000000", "1000000.5", "1e12",
                        "1000000000000", "1000000000001", "1e300", "1.7e308", "9223372036854775807",
                        "9223372036854775808", "18446744073709551616"}) {
    t.push_back({n, true, std::strtod(n, nullptr)});
  }
  for (const char* n : {"NaN", "Infinity", "-Infinity", "1e999", "\"NaN\"", "\"Infinity\"",
                        "\"-Infinity\"", "\"1e999\""}) {
    t.push_back({n, false, 0});
  }
  return t;
}

bool Accepted(const std::string& field, const Token& t) {
  if (!t.valid_number || t.value < 0) return false;
  if (field == "tokens" && std::trunc(t.value) != t.value) return false;
  return t.value <= (field == "cost_usd" ? kMaxCost : kMaxCount);
}

// Every number in `j` must be >= 0 and every key in kNumericKeys a number. Returns problems.
void Walk(const json& j, const std::string& path, std::vector<std::string>* problems) {
  static const std::set<std::string> kNumericKeys = {
      "total",
      "value",
      "count",
      "totalCost",
      "totalTokens",
      "totalRequests",
      "averageRequests",
      "averageUsers",
      "requests",
      "errors",
      "message_credits_consumed",
      "integration_credits_consumed",
      "total_credits_consumed",
      "active_users_last_30d",
      "agent_count",
      "agent_count_previous_period",
  };
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it) {
      const std::string child = path + "." + it.key();
      if (kNumericKeys.count(it.key()) && !it.value().is_number() && !it.value().is_array() &&
          !it.value().is_object()) {
        problems->push_back(child + " is not a number: " + it.value().dump());
      }
      Walk(it.value(), child, problems);
    }
  } else if (j.is_array()) {
    for (size_t i = 0; i < j.size(); ++i)
      Walk(j[i], path + "[" + std::to_string(i) + "]", problems);
  } else if (j.is_number()) {
    if (j.get<double>() < 0 || !std::isfinite(j.get<double>())) {
      problems->push_back(path + " = " + j.dump());
    }
  }
}

// `j` as a double, NaN when it is not a number (a failed comparison, not an exception).
double Num(const json& j) { return j.is_number() ? j.get<double>() : std::nan(""); }

// GETs or POSTs and walks the JSON answer; returns it (null on failure).
json Check(Stack& stack, const std::string& method, const std::string& target,
           const std::string& body, const Headers& headers, std::vector<std::string>* problems,
           bool allow_422 = false) {
  Result<HttpResponse> r = stack.http().Send(method, target, headers, body);
  if (!r) {
    problems->push_back(method + " " + target + ": " + r.error().message);
    return nullptr;
  }
  if (allow_422 && r->status == 422) return nullptr;
  if (r->status != 200) {
    problems->push_back(method + " " + target + " " + body + ": " + std::to_string(r->status) +
                        " " + r->body.substr(0, 300));
    return nullptr;
  }
  json doc = json::parse(r->body, nullptr, false);
  if (doc.is_discarded()) {
    problems->push_back(method + " " + target + ": not JSON");
    return nullptr;
  }
  std::vector<std::string> found;
  Walk(doc, "$", &found);
  for (const std::string& f : found)
    problems->push_back(method + " " + target + " " + body + ": " + f);
  return doc;
}

TEST(ExtremeMeasuresE2E, RejectedCleanlyOrCountedExactlyAndNeverNegativeOrNull) {
  const std::vector<Token> tokens = Tokens();
  const std::vector<std::string> fields = {"tokens", "duration_ms", "cost_usd", "message_credits",
                                           "integration_credits"};
  std::mt19937_64 rng(20261204);
  std::vector<std::string> lines;
  size_t accepted_agent_exec = 0, accepted_workflow_exec = 0, rejected = 0;
  double agent_r_credits = 0;  // message credits of agent-r, accepted events
  // 1. Random events: each field absent or one random extreme token.
  for (int i = 0; i < 600; ++i) {
    const bool agent = rng() % 3 != 0;
    std::string measures;
    bool ok = true;
    double credits = 0;
    for (const std::string& f : fields) {
      if (rng() % 3 == 0) continue;
      const Token& t = tokens[rng() % tokens.size()];
      if (!measures.empty()) measures += ", ";
      measures += "\"" + f + "\": " + t.text;
      ok = ok && Accepted(f, t);
      if (f == "message_credits" && t.valid_number) credits = t.value;
    }
    const std::string day = std::to_string(10 + static_cast<int>(rng() % 18));
    lines.push_back(Event("r-" + std::to_string(i), agent ? "agent.executed" : "workflow.executed",
                          "2026-02-" + day + "T08:00:00Z", "u-r" + std::to_string(i % 7),
                          agent ? "agent-r" : "flow-r", measures));
    if (!ok) {
      ++rejected;
    } else if (agent) {
      ++accepted_agent_exec;
      agent_r_credits += credits;
    } else {
      ++accepted_workflow_exec;
    }
  }
  // Values that used to wrap totals or turn them into null: all rejected now.
  for (const char* m : {"\"tokens\": 9223372036854775807", "\"cost_usd\": 1e300",
                        "\"message_credits\": 1.7e308", "\"duration_ms\": 1.7e308"}) {
    lines.push_back(Event("h-" + std::to_string(lines.size()), "agent.executed",
                          "2026-02-20T09:00:00Z", "u-h", "agent-r", m));
    ++rejected;
  }
  // 2. ~9,300 requests of 10^6 USD (10^15 nano-dollars each) by one user of one agent: the
  // organization's cost_nanos saturates at INT64_MAX after 9,223 of them.
  constexpr int kMaxCostEvents = 9'300;
  for (int i = 0; i < kMaxCostEvents; ++i) {
    lines.push_back(Event("m-" + std::to_string(i), "agent.executed",
                          "2026-02-2" + std::to_string(1 + i % 7) + "T12:00:00Z", "u-max",
                          "agent-max",
                          "\"cost_usd\": 1e6, \"tokens\": 1000000000000, \"message_credits\": "
                          "1e12, \"integration_credits\": 1e12, \"duration_ms\": 1e12"));
  }
  // Inventory for the leaderboard and Super Agents.
  for (const char* a : {"agent-r", "agent-max"}) {
    lines.push_back(
        Event(std::string("c-") + a, "agent.created", "2026-02-09T08:00:00Z", "u-max", a));
  }
  const size_t valid = lines.size() - rejected;

  Stack stack;
  stack.keys().push_back(KeySpec::Admin("admin", kAdminToken));
  ASSERT_TRUE(stack.StartBroker(2));
  ASSERT_TRUE(stack.StartTallyd());
  const double saturated_before = Metric(stack, "tally_sum_saturated_total");
  ASSERT_TRUE(
      stack.ProducePaced(lines, std::vector<std::string>(lines.size(), kWs), 5000, Millis(60000)));
  ASSERT_TRUE(stack.WaitForCatchUp(Millis(60000)));
  EXPECT_EQ(Metric(stack, "tally_events_applied_total"), static_cast<double>(valid));
  EXPECT_EQ(Metric(stack, "tally_dlq_produced_total"), static_cast<double>(rejected));
  EXPECT_GT(Metric(stack, "tally_events_rejected_total", {"reason=\"out_of_range\""}), 0.0);
  EXPECT_GT(Metric(stack, "tally_events_rejected_total", {"reason=\"invalid_json\""}), 0.0);

  std::vector<std::string> problems;
  // Workspace metrics: every entity x metric x aggregation x group_by x granularity x period.
  for (const MetricsCall& c : AllCombinations(kWs, "u-max")) {
    const WireRequest w = BuildRequest(c);
    Check(stack, w.method, w.target, w.body, kAdmin, &problems, SeedRejects(c.query));
  }
  auto total = [&](const std::string& entity, const std::string& metric,
                   const std::string& aggregation) {
    json q = {{"workspace_uuid", kWs},
              {"entity", entity},
              {"metric", metric},
              {"aggregation", aggregation},
              {"filters", {{"period", "30d"}}}};
    json doc = Check(stack, "POST", "/api/v1/workspaces/metrics", q.dump(), kAdmin, &problems);
    return doc.is_object() ? Num(doc["data"]["total"]) : -1.0;
  };
  // Exact counts against the events (in-range ones only).
  EXPECT_EQ(total("agents", "executions", "count"),
            static_cast<double>(accepted_agent_exec + kMaxCostEvents));
  EXPECT_EQ(total("workflows", "executions", "count"), static_cast<double>(accepted_workflow_exec));

  // Agent leaderboard.
  for (const std::string& q :
       {std::string("workspace_uuid=") + kWs,
        std::string("workspace_uuid=") + kWs + "&date_from=2026-02-01&date_to=2026-03-01"}) {
    Check(stack, "GET", "/api/agents/leaderboard?" + q, "", kAdmin, &problems);
  }

  // The eleven request analytics endpoints.
  json usage;
  for (const char* m :
       {"total-active-users", "total-active-projects", "total-active-agents",
        "average-requests-per-day", "average-users-per-project", "average-users-per-agent",
        "top-10-agents-by-requests", "top-10-users-by-requests", "top-10-agents-by-tokens",
        "total-requests-per-day", "agent-usage-per-user"}) {
    for (const char* agent : {"", "&agentName=agent-max"}) {
      json doc = Check(stack, "GET",
                       std::string("/v1/analytics/requests/") + m +
                           "?startDate=2026-01-01&endDate=2026-03-01" + agent,
                       "", kAdmin, &problems);
      if (std::string(m) == "agent-usage-per-user" && *agent == '\0') usage = doc;
    }
  }
  // u-max: saturated cost (INT64_MAX nano-dollars), exact requests and tokens.
  bool found = false;
  for (const json& row : usage.is_object() ? usage["agentUsage"] : json::array()) {
    if (row["user"] != "u-max@example.com") continue;
    found = true;
    EXPECT_EQ(Num(row["totalCost"]), static_cast<double>(INT64_MAX) / 1e9) << row;
    EXPECT_EQ(row["totalRequests"], kMaxCostEvents) << row;
    EXPECT_EQ(row["totalTokens"], int64_t{kMaxCostEvents} * 1'000'000'000'000) << row;
  }
  EXPECT_TRUE(found) << usage.dump().substr(0, 500);

  // Super Agents monitoring list (the default range is the current month: ask for February),
  // and exact credits.
  Check(stack, "GET", std::string("/api/v1/monitoring/") + kWs + "/superagents", "", kAdmin,
        &problems);
  for (const char* q : {"limit=50&from=2026-02-01&to=2026-03-01",
                        "limit=50&from=2026-02-01&to=2026-03-01&sort=-message_credits_consumed",
                        "limit=50&from=2026-02-01&to=2026-03-01&sort=-total_credits_consumed"}) {
    json doc = Check(stack, "GET", std::string("/api/v1/monitoring/") + kWs + "/superagents?" + q,
                     "", kAdmin, &problems);
    if (!doc.is_object()) continue;
    EXPECT_EQ(doc["superagents"].size(), 2u) << doc.dump().substr(0, 500);
    for (const json& row : doc["superagents"]) {
      if (row["superagent_id"] == "agent-max") {
        EXPECT_EQ(Num(row["message_credits_consumed"]), kMaxCostEvents * 1e12) << row;
        EXPECT_EQ(Num(row["total_credits_consumed"]), 2 * kMaxCostEvents * 1e12) << row;
      } else if (row["superagent_id"] == "agent-r") {
        EXPECT_EQ(Num(row["message_credits_consumed"]), agent_r_credits) << row;
      }
    }
  }

  // Saturation happened (in the fold's roll-ups, the merge operators or the query sums) and was
  // counted.
  EXPECT_GT(Metric(stack, "tally_sum_saturated_total"), saturated_before);

  for (size_t i = 0; i < problems.size() && i < 20; ++i) ADD_FAILURE() << problems[i];
  EXPECT_TRUE(problems.empty()) << problems.size() << " problems";
}

}  // namespace
}  // namespace tally::integration
