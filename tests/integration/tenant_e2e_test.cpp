// Tenant safety end to end (docs/security.md): a workspace belongs to one organization, over Kafka
// and over POST /v1/events; a key writes only into the scopes it holds; a user's email shown by
// request analytics comes only from the organization's own events; profiles shown by workspace
// views come only from the workspace's own events. Real broker process, real tallyd, real sockets.

#include <gtest/gtest.h>

#include <csignal>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "harness.h"
#include "kafka/dead_letter.h"

namespace tally::integration {
namespace {

using nlohmann::json;
using Headers = std::vector<std::pair<std::string, std::string>>;

constexpr const char* kWsA = "aaaaaaaa-1111-4000-8000-00000000000a";  // org_1
constexpr const char* kWsB = "bbbbbbbb-1111-4000-8000-00000000000b";  // org_3
constexpr const char* kWsC = "cccccccc-1111-4000-8000-00000000000c";  // org_2
constexpr const char* kWsD = "dddddddd-1111-4000-8000-00000000000d";  // declared: org_5
constexpr const char* kBatchType = "application/cloudevents-batch+json";

// An agent.executed event (inside the 30 days before Stack::kNow).
struct Ev {
  std::string id = {}, ws = {}, org = {}, user = {}, agent = {};
  std::string email = {}, name = {};
  std::string time = "2026-02-20T10:00:00Z";
  std::string type = "agent.executed";

  std::string Line() const {
    json user_j = {{"id", user}};
    if (!email.empty()) user_j["email"] = email;
    if (!name.empty()) user_j["name"] = name;
    json data = {{"workspace_id", ws}, {"user", user_j}, {"agent", {{"id", agent}}}};
    if (!org.empty()) data["organization_id"] = org;
    if (type == "agent.executed") data["tokens"] = 5;
    return json({{"specversion", "1.0"},
                 {"id", id},
                 {"source", "it/tenant"},
                 {"type", type},
                 {"time", time},
                 {"data", data}})
        .dump();
  }
};

class TenantE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    KeySpec a_only;  // workspace A, no organization
    a_only.name = "a-only";
    a_only.token = "tok-a-only";
    a_only.workspaces = {{kWsA, "owner"}};
    KeySpec a_org1;  // workspace A and its organization
    a_org1.name = "a-org1";
    a_org1.token = "tok-a-org1";
    a_org1.workspaces = {{kWsA, "owner"}};
    a_org1.organizations = {"org_1"};
    KeySpec c_owner;
    c_owner.name = "c-owner";
    c_owner.token = "tok-c";
    c_owner.workspaces = {{kWsC, "owner"}};
    stack_.keys() = {a_only, a_org1, c_owner, KeySpec::Admin("admin", "tok-admin")};
    stack_.bindings() = {{kWsD, "org_5"}};
    ASSERT_TRUE(stack_.StartBroker(2));
    ASSERT_TRUE(stack_.StartTallyd());
  }

  void Produce(const std::vector<Ev>& events) {
    std::vector<std::string> lines, keys;
    for (const Ev& e : events) {
      lines.push_back(e.Line());
      keys.push_back(e.ws);
    }
    ASSERT_TRUE(stack_.Produce(lines, keys));
    ASSERT_TRUE(stack_.WaitForCatchUp(Millis(60000)));
  }

  HttpResponse Post(const std::string& token, const std::vector<Ev>& events) {
    std::string body = "[";
    for (size_t i = 0; i < events.size(); ++i) body += (i ? "," : "") + events[i].Line();
    body += "]";
    Result<HttpResponse> r = stack_.http().Send(
        "POST", "/v1/events", {{"Authorization", "Bearer " + token}, {"Content-Type", kBatchType}},
        body);
    EXPECT_TRUE(r) << r.error().message;
    return r ? *r : HttpResponse{};
  }

  // GET a request-analytics endpoint as the admin, narrowed to `org`.
  json Requests(const std::string& metric, const std::string& org) {
    Result<HttpResponse> r = stack_.http().Send(
        "GET", "/v1/analytics/requests/" + metric + "?startDate=2026-02-01&endDate=2026-03-01",
        {{"Authorization", "Bearer tok-admin"}, {"organization-id", org}});
    EXPECT_TRUE(r) << r.error().message;
    if (!r) return json();
    EXPECT_EQ(r->status, 200) << metric << " " << org << ": " << r->body;
    return json::parse(r->body, nullptr, false);
  }

  // The "agent" (or "user") labels of a top-10 answer.
  static std::set<std::string> Labels(const json& top, const char* list, const char* field) {
    std::set<std::string> out;
    for (const json& row : top[list]) out.insert(row[field].get<std::string>());
    return out;
  }

  std::vector<ConsumedMessage> DeadLetters() {
    auto msgs = ReadTopic(stack_.bootstrap(), Stack::kDlqTopic, Millis(20000));
    EXPECT_TRUE(msgs) << msgs.error().message;
    return msgs ? *msgs : std::vector<ConsumedMessage>{};
  }

  double Mismatches() {
    return MetricSum(stack_.MetricsText(), "tally_events_rejected_total",
                     {"reason=\"organization_mismatch\""})
        .value_or(0);
  }

  Stack stack_;
};

TEST_F(TenantE2E, AWorkspaceBelongsToOneOrganizationOverKafka) {
  Produce({{.id = "a1", .ws = kWsA, .org = "org_1", .user = "u1", .agent = "agent-a"},
           {.id = "b1", .ws = kWsB, .org = "org_3", .user = "u3", .agent = "agent-b"},
           // Workspace A is org_1's: this one would write into org_3's analytics.
           {.id = "a2", .ws = kWsA, .org = "org_3", .user = "intruder", .agent = "agent-x"},
           // Without an organization it is A's event like any other.
           {.id = "a3", .ws = kWsA, .user = "u2", .agent = "agent-a"},
           // The declared binding holds even before any event named it.
           {.id = "d1", .ws = kWsD, .org = "org_6", .user = "u6", .agent = "agent-d"}});

  std::vector<ConsumedMessage> dlq = DeadLetters();
  ASSERT_EQ(dlq.size(), 2u);
  for (const ConsumedMessage& m : dlq) {
    EXPECT_EQ(m.Header(kafka::kDeadLetterReasonHeader).rfind("organization mismatch", 0), 0u)
        << m.Header(kafka::kDeadLetterReasonHeader);
  }
  EXPECT_EQ(Mismatches(), 2);

  json agents = Requests("top-10-agents-by-requests", "org_3");
  EXPECT_EQ(Labels(agents, "top10Agents", "agent"), std::set<std::string>{"agent-b"}) << agents;
  json users = Requests("top-10-users-by-requests", "org_3");
  EXPECT_EQ(Labels(users, "top10Users", "user"), std::set<std::string>{"u3"}) << users;
  EXPECT_EQ(Requests("total-active-users", "org_1")["totalActiveUsers"], 1);

  // The binding is stored with the views: after a restart it still holds.
  stack_.StopTallyd(SIGKILL);
  ASSERT_TRUE(stack_.StartTallyd());
  Produce({{.id = "a4", .ws = kWsA, .org = "org_3", .user = "intruder", .agent = "agent-x"},
           {.id = "a5", .ws = kWsA, .org = "org_1", .user = "u1", .agent = "agent-a"}});
  EXPECT_EQ(DeadLetters().size(), 3u);
  EXPECT_EQ(Labels(Requests("top-10-agents-by-requests", "org_3"), "top10Agents", "agent"),
            std::set<std::string>{"agent-b"});
  EXPECT_EQ(Requests("top-10-agents-by-requests", "org_1")["top10Agents"],
            json::parse(R"([{"agent": "agent-a", "totalRequests": 2}])"));
}

TEST_F(TenantE2E, HttpKeysWriteOnlyIntoScopesTheyHold) {
  // Binds workspace A to org_1.
  HttpResponse r =
      Post("tok-a-org1", {{.id = "h1", .ws = kWsA, .org = "org_1", .user = "u1", .agent = "ag"}});
  ASSERT_EQ(r.status, 202) << r.body;

  // A key holding workspace A but no organization may not write into one: 403 naming the index.
  r = Post("tok-a-only",
           {{.id = "h2", .ws = kWsA, .user = "u1", .agent = "ag"},
            {.id = "h3", .ws = kWsA, .org = "org_3", .user = "intruder", .agent = "agent-x"}});
  ASSERT_EQ(r.status, 403) << r.body;
  json body = json::parse(r.body, nullptr, false);
  ASSERT_EQ(body["errors"].size(), 1u) << r.body;
  EXPECT_EQ(body["errors"][0]["index"], 1);
  EXPECT_EQ(body["errors"][0]["field"], "data.organization_id");

  // Holding org_1 is not holding org_3.
  r = Post("tok-a-org1",
           {{.id = "h4", .ws = kWsA, .org = "org_3", .user = "intruder", .agent = "agent-x"}});
  ASSERT_EQ(r.status, 403) << r.body;
  EXPECT_EQ(json::parse(r.body)["errors"][0]["field"], "data.organization_id");

  // Nothing of the refused requests was published; events without an organization are fine.
  r = Post("tok-a-only", {{.id = "h5", .ws = kWsA, .user = "u2", .agent = "ag"}});
  ASSERT_EQ(r.status, 202) << r.body;

  // A workspace declared in the keys file refuses another organization at once: 400.
  r = Post("tok-admin", {{.id = "h6", .ws = kWsD, .org = "org_5", .user = "u5", .agent = "ag"},
                         {.id = "h7", .ws = kWsD, .org = "org_6", .user = "u6", .agent = "ag"}});
  ASSERT_EQ(r.status, 400) << r.body;
  body = json::parse(r.body, nullptr, false);
  ASSERT_EQ(body["errors"].size(), 1u) << r.body;
  EXPECT_EQ(body["errors"][0]["index"], 1);
  EXPECT_EQ(body["errors"][0]["category"], "organization_mismatch");

  // An admin holds every scope, but a bound workspace still takes one organization: accepted by
  // HTTP, dead-lettered by ingest, never in org_3's views.
  r = Post("tok-admin",
           {{.id = "h8", .ws = kWsA, .org = "org_3", .user = "intruder", .agent = "agent-x"},
            {.id = "h9", .ws = kWsB, .org = "org_3", .user = "u3", .agent = "agent-b"}});
  ASSERT_EQ(r.status, 202) << r.body;
  ASSERT_TRUE(stack_.WaitForCatchUp(Millis(60000)));
  std::vector<ConsumedMessage> dlq = DeadLetters();
  ASSERT_EQ(dlq.size(), 1u);
  EXPECT_EQ(dlq[0].Header(kafka::kDeadLetterReasonHeader).rfind("organization mismatch", 0), 0u);
  EXPECT_EQ(Labels(Requests("top-10-agents-by-requests", "org_3"), "top10Agents", "agent"),
            std::set<std::string>{"agent-b"});
  EXPECT_EQ(Requests("total-requests-per-day", "org_1")["totalRequestsPerDay"].size(), 29u);
  EXPECT_EQ(Requests("total-active-users", "org_1")["totalActiveUsers"], 1);
}

TEST_F(TenantE2E, LabelsComeOnlyFromTheScopesOwnEvents) {
  // One user id active in two organizations. org_2's event is older; org_1's names an email and
  // a name of its own choosing.
  Produce({{.id = "c1",
            .ws = kWsC,
            .org = "org_2",
            .user = "shared",
            .agent = "agent-c",
            .email = "real@org2.example",
            .name = "Real Name",
            .time = "2026-02-10T10:00:00Z"},
           {.id = "a1",
            .ws = kWsA,
            .org = "org_1",
            .user = "shared",
            .agent = "agent-a",
            .email = "x@evil",
            .name = "Evil Name",
            .time = "2026-02-20T10:00:00Z"}});

  json org2 = Requests("top-10-users-by-requests", "org_2");
  EXPECT_EQ(Labels(org2, "top10Users", "user"), std::set<std::string>{"real@org2.example"}) << org2;
  json org1 = Requests("top-10-users-by-requests", "org_1");
  EXPECT_EQ(Labels(org1, "top10Users", "user"), std::set<std::string>{"x@evil"}) << org1;
  json usage = Requests("agent-usage-per-user", "org_2");
  ASSERT_EQ(usage["agentUsage"].size(), 1u) << usage;
  EXPECT_EQ(usage["agentUsage"][0]["user"], "real@org2.example");

  // Workspace views show the workspace's own profile.
  json q = {{"workspace_uuid", kWsC}, {"entity", "agents"}, {"metric", "executions"},
            {"aggregation", "count"}, {"group_by", "user"}, {"filters", {{"period", "30d"}}}};
  Result<HttpResponse> r = stack_.http().Send("POST", "/api/v1/workspaces/metrics",
                                              {{"Authorization", "Bearer tok-c"}}, q.dump());
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->body.find("Evil"), std::string::npos) << r->body;
  EXPECT_EQ(r->body.find("x@evil"), std::string::npos) << r->body;
  EXPECT_NE(r->body.find("Real Name"), std::string::npos) << r->body;
}

}  // namespace
}  // namespace tally::integration
