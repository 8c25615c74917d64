// Workspace metrics end to end: `tally broker`, then `tallyd`, then generated events produced
// through Kafka; every combination of entity x metric x aggregation x group_by x granularity x
// period, without and with a user filter, must equal what the reference model computes from the
// same lines. Everything runs in one test so the stack and the ingest are set up once.

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>

#include "harness.h"
#include "metrics_compare.h"
#include "reference.h"

namespace tally::integration {
namespace {

using nlohmann::json;
constexpr const char* kAdminToken = "it-admin-token";

double Elapsed(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

// group_by=date and group_by=user with explicit order_by / order_dir, compared with the
// reference rows sorted the same way.
void CheckOrdering(HttpClient& http, const ReferenceModel& ref, const std::string& ws) {
  struct Case {
    std::string group_by, order_by, order_dir;
  };
  for (const Case& c : std::vector<Case>{{"date", "date", "desc"},
                                         {"date", "value", "desc"},
                                         {"date", "value", "asc"},
                                         {"date", "date", "asc"},
                                         {"user", "value", "asc"},
                                         {"user", "name", "asc"},
                                         {"user", "name", "desc"}}) {
    RefQuery q;
    q.workspace_id = ws;
    q.entity = "agents";
    q.metric = "executions";
    q.aggregation = "count";
    q.group_by = c.group_by;
    q.granularity = "weekly";
    q.period = "90d";
    RefAnswer want = ref.Answer(q);
    json body = {{"workspace_uuid", ws},           {"entity", "agents"},
                 {"metric", "executions"},         {"aggregation", "count"},
                 {"group_by", c.group_by},         {"granularity", "weekly"},
                 {"filters", {{"period", "90d"}}}, {"order_by", c.order_by},
                 {"order_dir", c.order_dir},       {"limit", 100}};
    std::string request = "POST /api/v1/workspaces/metrics " + body.dump();
    Result<HttpResponse> r =
        http.Send("POST", "/api/v1/workspaces/metrics",
                  {{"Authorization", std::string("Bearer ") + kAdminToken}}, body.dump());
    ASSERT_TRUE(r) << request << ": " << r.error().message;
    ASSERT_EQ(r->status, 200) << request << ": " << r->body;
    json got = json::parse(r->body, nullptr, false);
    ASSERT_TRUE(got.is_object() && got["data"]["results"].is_array()) << request << ": " << r->body;
    const json& rows = got["data"]["results"];
    std::string label_field = c.group_by == "date" ? "date" : "user_id";
    ASSERT_EQ(rows.size(), std::min<size_t>(want.rows.size(), 100)) << request;
    std::vector<std::string> keys;
    for (size_t i = 0; i < rows.size(); ++i) {
      keys.push_back(rows[i].value(label_field, ""));
      if (i == 0) continue;
      const json &a = rows[i - 1], &b = rows[i];
      bool desc = c.order_dir == "desc";
      if (c.order_by == "date") {
        EXPECT_TRUE(desc ? a["date"] > b["date"] : a["date"] < b["date"])
            << request << " rows " << i - 1 << "," << i << ": " << a.dump() << " " << b.dump();
      } else if (c.order_by == "value") {
        EXPECT_TRUE(desc ? a["value"] >= b["value"] : a["value"] <= b["value"])
            << request << " rows " << i - 1 << "," << i << ": " << a.dump() << " " << b.dump();
      } else {
        EXPECT_TRUE(desc ? a["user_name"] >= b["user_name"] : a["user_name"] <= b["user_name"])
            << request << " rows " << i - 1 << "," << i << ": " << a.dump() << " " << b.dump();
      }
    }
    if (c.group_by == "date" || want.rows.size() <= 100) {
      // Same set of rows as the reference, whatever the order.
      std::vector<std::string> want_keys;
      for (const RefRow& row : want.rows) want_keys.push_back(row.key);
      std::sort(keys.begin(), keys.end());
      std::sort(want_keys.begin(), want_keys.end());
      EXPECT_EQ(keys, want_keys) << request;
    }
  }
}

TEST(MetricsE2E, EveryCombinationMatchesTheReference) {
  auto t0 = std::chrono::steady_clock::now();
  gen::GenOptions o;
  o.seed = 20260301;
  o.events = 30000;
  o.workspaces = 6;
  o.organizations = 3;
  o.users = 400;
  o.end_day = Stack::kToday;
  o.days = 120;
  o.duplicate_fraction = 0.07;  // about 2% of the lines survive GenerateDataset's age filter
  o.malformed_fraction = 0.005;
  Dataset data = GenerateDataset(o);
  ReferenceModel ref(Stack::kToday);
  for (const std::string& line : data.lines) ref.Add(line);
  ASSERT_EQ(ref.duplicates(), data.duplicates);
  ASSERT_EQ(ref.invalid(), data.malformed);
  std::fprintf(stderr,
               "[metrics_e2e] %zu lines: %zu accepted, %zu duplicates (%zu left out), %zu "
               "malformed\n",
               data.lines.size(), ref.accepted(), ref.duplicates(), data.dropped_duplicates,
               ref.invalid());

  Stack stack;
  stack.keys().push_back(KeySpec::Admin("it-admin", kAdminToken));
  ASSERT_TRUE(stack.StartBroker(4));
  ASSERT_TRUE(stack.StartTallyd());
  auto t_ingest = std::chrono::steady_clock::now();
  ASSERT_TRUE(stack.ProducePaced(data.lines, data.keys, 3000, Millis(120000)));
  std::fprintf(stderr, "[metrics_e2e] produced and ingested in %.1f s\n", Elapsed(t_ingest));

  // The ingest counters agree with the reference's verdicts.
  std::string metrics = stack.MetricsText();
  ASSERT_FALSE(metrics.empty()) << "GET /metrics failed";
  EXPECT_EQ(MetricSum(metrics, "tally_events_consumed_total"),
            static_cast<double>(data.lines.size()))
      << metrics;
  EXPECT_EQ(MetricSum(metrics, "tally_events_applied_total"), static_cast<double>(ref.accepted()));
  EXPECT_EQ(MetricSum(metrics, "tally_events_duplicate_total"),
            static_cast<double>(ref.duplicates()));
  EXPECT_EQ(MetricSum(metrics, "tally_events_rejected_total"), static_cast<double>(ref.invalid()));

  // Three workspaces: the busiest (more than 100 users: top-N comparison), a middle one, the
  // quietest. The user filter uses each workspace's most active user.
  std::vector<std::string> wss = ref.WorkspacesByActivity();
  ASSERT_GE(wss.size(), 3u);
  std::vector<std::string> chosen = {wss.front(), wss[wss.size() / 2], wss.back()};
  auto t_queries = std::chrono::steady_clock::now();
  size_t requests = 0;
  for (const std::string& ws : chosen) {
    SCOPED_TRACE("workspace " + ws);
    std::string user = ref.UsersByActivity(ws).front();
    std::vector<MetricsCall> calls = AllCombinations(ws, user);
    requests += calls.size();
    CheckAll(stack.http(), kAdminToken, ref, calls);
  }

  // The query-parameter form (filters[period] and the period/user_id aliases) on a subset:
  // every third combination of the middle workspace, with a less active user as the filter.
  {
    const std::string& ws = chosen[1];
    std::vector<std::string> users = ref.UsersByActivity(ws);
    std::string user = users[users.size() / 4];
    std::vector<MetricsCall> calls = AllCombinations(ws, user), subset;
    for (size_t i = 0; i < calls.size(); i += 3) {
      calls[i].form = (i / 3) % 2 ? RequestForm::kQueryParams : RequestForm::kQueryParamsAliases;
      subset.push_back(calls[i]);
    }
    requests += subset.size();
    SCOPED_TRACE("query-parameter form, workspace " + ws);
    CheckAll(stack.http(), kAdminToken, ref, subset);
  }

  // Limits below the number of users: the top rows by value.
  {
    std::vector<MetricsCall> calls;
    for (int limit : {1, 5, 10}) {
      MetricsCall c;
      c.query.workspace_id = chosen[0];
      c.query.group_by = "user";
      c.query.period = "all";
      c.limit = limit;
      calls.push_back(c);
    }
    requests += calls.size();
    SCOPED_TRACE("group_by=user with small limits");
    CheckAll(stack.http(), kAdminToken, ref, calls);
  }

  // A user without events in the workspace: zeros, and zero-filled dates.
  {
    std::vector<MetricsCall> calls;
    for (const char* group_by : {"", "user", "date"}) {
      MetricsCall c;
      c.query.workspace_id = chosen[0];
      c.query.group_by = group_by;
      c.query.granularity = "weekly";
      c.granularity = "weekly";
      c.query.user_id = "no-such-user-in-this-workspace";
      calls.push_back(c);
    }
    SCOPED_TRACE("unknown user filter");
    CheckAll(stack.http(), kAdminToken, ref, calls);
  }

  CheckOrdering(stack.http(), ref, chosen[0]);
  std::fprintf(stderr, "[metrics_e2e] %zu metrics requests compared in %.1f s; total %.1f s\n",
               requests, Elapsed(t_queries), Elapsed(t0));
}

}  // namespace
}  // namespace tally::integration
