// Unit tests of GET /v1/analytics/requests/{metric}: every validation and auth case (status and
// body), scope resolution from keys and headers, and the rendered shapes of the contract.
#include "http/requests_handler.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/json_writer.h"
#include "common/sha256.h"

namespace tally::http {
namespace {

using nlohmann::json;
using query::RequestsMetric;

const json kUnauthenticated = {{"message", "Unauthenticated."}};
const json kForbidden = {{"message", "This action is unauthorized."}};

class RequestsHandlerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto entry = [](const std::string& name, const std::string& token, const std::string& rest) {
      return "[[keys]]\nname = \"" + name + "\"\nsha256 = \"" + Sha256Hex(token) + "\"\n" + rest +
             "\n";
    };
    auto keys =
        KeyStore::LoadString(entry("one", "tok-one", R"(organizations = ["org_1"])") +
                             entry("two", "tok-two", R"(organizations = ["org_1", "org_2"])") +
                             entry("none", "tok-none", R"(workspaces = { "ws" = "owner" })") +
                             entry("admin", "tok-admin", "admin = true"));
    ASSERT_TRUE(keys.has_value()) << keys.error().message;
    RequestsBackend backend;
    backend.run = [this](RequestsMetric m,
                         const query::RequestsQuery& q) -> Result<query::RequestsResult> {
      ++calls_;
      metric_ = m;
      last_ = q;
      return result_;
    };
    backend.organization_known = [](std::string_view org) { return org != "org_nowhere"; };
    backend.all_organizations = [] { return std::vector<std::string>{"org_1", "org_2", "org_3"}; };
    handler_ = std::make_unique<RequestsHandler>(std::make_shared<const KeyStore>(std::move(*keys)),
                                                 backend);
  }

  Response Get(std::string metric, std::string query, StringPairs headers = {},
               std::string token = "tok-one") {
    Request r;
    r.method = "GET";
    r.path = "/v1/analytics/requests/" + metric;
    r.path_params = {{"metric", metric}};
    r.query = ParseQueryString(query);
    r.headers = std::move(headers);
    if (!token.empty()) r.headers.emplace_back("Authorization", "Bearer " + token);
    return handler_->Handle(r);
  }

  // Status and the names of the parameters in errors.
  void ExpectInvalid(const Response& r, const std::vector<std::string>& fields) {
    EXPECT_EQ(r.status, 422) << r.body;
    json body = json::parse(r.body);
    ASSERT_TRUE(body.contains("message")) << r.body;
    ASSERT_TRUE(body.contains("errors")) << r.body;
    std::vector<std::string> got;
    for (auto& [k, v] : body["errors"].items()) {
      got.push_back(k);
      ASSERT_TRUE(v.is_array() && !v.empty()) << r.body;
    }
    std::sort(got.begin(), got.end());
    std::vector<std::string> want = fields;
    std::sort(want.begin(), want.end());
    EXPECT_EQ(got, want) << r.body;
    EXPECT_EQ(calls_, 0);
  }

  std::unique_ptr<RequestsHandler> handler_;
  query::RequestsResult result_;
  query::RequestsQuery last_;
  RequestsMetric metric_{};
  int calls_ = 0;
};

constexpr const char* kRange = "startDate=2024-01-01&endDate=2024-01-31";

TEST_F(RequestsHandlerTest, MissingDates) {
  ExpectInvalid(Get("total-active-users", ""), {"startDate", "endDate"});
  ExpectInvalid(Get("total-active-users", "startDate=2024-01-01"), {"endDate"});
  ExpectInvalid(Get("total-active-users", "endDate=2024-01-01"), {"startDate"});
  auto r = Get("total-active-users", "endDate=2024-01-01");
  EXPECT_EQ(json::parse(r.body)["errors"]["startDate"][0], "The startDate field is required.");
}

TEST_F(RequestsHandlerTest, BadDates) {
  for (const char* bad : {"2024-13-01", "2024-1-1", "yesterday", "2024-02-30", ""}) {
    ExpectInvalid(
        Get("total-active-users", std::string("startDate=") + bad + "&endDate=2024-03-01"),
        {"startDate"});
    ExpectInvalid(Get("total-active-users", std::string("startDate=2024-03-01&endDate=") + bad),
                  {"endDate"});
  }
  auto r = Get("total-active-users", "startDate=2024-13-01&endDate=2024-03-01");
  EXPECT_EQ(json::parse(r.body)["errors"]["startDate"][0],
            "The startDate field must match the format Y-m-d.");
}

TEST_F(RequestsHandlerTest, ReversedAndTooLongRanges) {
  auto r = Get("total-active-users", "startDate=2024-02-01&endDate=2024-01-31");
  ExpectInvalid(r, {"endDate"});
  EXPECT_EQ(json::parse(r.body)["errors"]["endDate"][0],
            "The endDate field must be a date after or equal to startDate.");
  r = Get("total-active-users", "startDate=2024-01-01&endDate=2025-01-01");  // 367 days
  ExpectInvalid(r, {"startDate"});
  EXPECT_EQ(json::parse(r.body)["errors"]["startDate"][0],
            "The date range must not be longer than 366 days.");
  // 366 days is fine.
  EXPECT_EQ(Get("total-active-users", "startDate=2024-01-01&endDate=2024-12-31").status, 200);
}

TEST_F(RequestsHandlerTest, AgentNameTooLongAndEmpty) {
  ExpectInvalid(
      Get("total-active-users", std::string(kRange) + "&agentName=" + std::string(257, 'a')),
      {"agentName"});
  ASSERT_EQ(Get("total-active-users", std::string(kRange) + "&agentName=").status, 200);
  EXPECT_FALSE(last_.agent_name.has_value());  // empty = no filter (dashboards send it)
  ASSERT_EQ(Get("total-active-users", std::string(kRange) + "&agentName=Support%20Agent").status,
            200);
  EXPECT_EQ(last_.agent_name, "Support Agent");
}

TEST_F(RequestsHandlerTest, AuthCases) {
  auto r = Get("total-active-users", kRange, {}, "");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(json::parse(r.body), kUnauthenticated);
  r = Get("total-active-users", kRange, {}, "wrong-token");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(json::parse(r.body), kUnauthenticated);
  // A key without organizations.
  r = Get("total-active-users", kRange, {}, "tok-none");
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(json::parse(r.body), kForbidden);
  // An organization the key does not hold, under both spellings.
  for (const char* h : {"organization-id", "OrganizationId"}) {
    r = Get("total-active-users", kRange, {{h, "org_2"}});
    EXPECT_EQ(r.status, 403) << h;
    EXPECT_EQ(json::parse(r.body), kForbidden);
    // ... even one that does not exist: nothing is revealed.
    r = Get("total-active-users", kRange, {{h, "org_nowhere"}});
    EXPECT_EQ(r.status, 403) << h;
  }
  EXPECT_EQ(calls_, 0);
  // api_key header works too.
  Request req;
  req.method = "GET";
  req.path_params = {{"metric", "total-active-users"}};
  req.query = ParseQueryString(kRange);
  req.headers = {{"api_key", "tok-one"}};
  EXPECT_EQ(handler_->Handle(req).status, 200);
}

TEST_F(RequestsHandlerTest, AdminUnknownOrganizationIs404) {
  auto r = Get("total-active-users", kRange, {{"organization-id", "org_nowhere"}}, "tok-admin");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(json::parse(r.body)["message"], "Organization not found.");
  EXPECT_EQ(json::parse(r.body)["field"], "organization-id");
}

TEST_F(RequestsHandlerTest, ConflictingHeaderSpellings) {
  ExpectInvalid(Get("total-active-users", kRange,
                    {{"organization-id", "org_1"}, {"OrganizationId", "org_2"}}),
                {"organization-id"});
  ExpectInvalid(Get("total-active-users", kRange, {{"project-id", "p1"}, {"ProjectId", "p2"}}),
                {"project-id"});
  // The same header twice with different values, too.
  ExpectInvalid(Get("total-active-users", kRange,
                    {{"organization-id", "org_1"}, {"organization-id", "org_2"}}),
                {"organization-id"});
  // The same value twice is fine.
  EXPECT_EQ(Get("total-active-users", kRange, {{"project-id", "p1"}, {"ProjectId", "p1"}}).status,
            200);
}

TEST_F(RequestsHandlerTest, ScopeFromKeyAndHeaders) {
  ASSERT_EQ(Get("total-active-users", kRange, {}, "tok-two").status, 200);
  EXPECT_EQ(last_.organizations, (std::vector<std::string>{"org_1", "org_2"}));
  EXPECT_FALSE(last_.project_id.has_value());
  ASSERT_EQ(Get("total-active-users", kRange, {{"OrganizationId", "org_2"}, {"ProjectId", "p9"}},
                "tok-two")
                .status,
            200);
  EXPECT_EQ(last_.organizations, (std::vector<std::string>{"org_2"}));
  EXPECT_EQ(last_.project_id, "p9");
  ASSERT_EQ(Get("total-active-users", kRange, {}, "tok-admin").status, 200);
  EXPECT_EQ(last_.organizations, (std::vector<std::string>{"org_1", "org_2", "org_3"}));
  EXPECT_EQ(last_.start, *ParseDay("2024-01-01"));
  EXPECT_EQ(last_.end, *ParseDay("2024-01-31"));
}

TEST_F(RequestsHandlerTest, UnknownMetricIs404) {
  auto r = Get("total-active-things", kRange);
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(calls_, 0);
}

TEST_F(RequestsHandlerTest, RendersTheSeedShapes) {
  result_.count = 42;
  result_.average = 2.5;
  result_.top = {{"Support Agent", 7}, {"Ops", 7}};
  result_.days = {{*ParseDay("2024-01-01"), 3, 1}};
  result_.usage = {{"jane@x.com", 0.125, 3, 812}};
  auto body = [&](const char* m) { return json::parse(Get(m, kRange).body); };
  EXPECT_EQ(body("total-active-users"), json::parse(R"({"totalActiveUsers":42})"));
  EXPECT_EQ(body("total-active-projects"), json::parse(R"({"totalActiveProjects":42})"));
  EXPECT_EQ(body("total-active-agents"), json::parse(R"({"totalActiveAgents":42})"));
  EXPECT_EQ(body("average-requests-per-day"), json::parse(R"({"averageRequests":2.5})"));
  EXPECT_EQ(body("average-users-per-project"), json::parse(R"({"averageUsers":2.5})"));
  EXPECT_EQ(body("average-users-per-agent"), json::parse(R"({"averageUsers":2.5})"));
  EXPECT_EQ(body("top-10-agents-by-requests"),
            json::parse(R"({"top10Agents":[{"agent":"Support Agent","totalRequests":7},
                                           {"agent":"Ops","totalRequests":7}]})"));
  EXPECT_EQ(body("top-10-agents-by-tokens"),
            json::parse(R"({"top10Agents":[{"agent":"Support Agent","totalTokens":7},
                                           {"agent":"Ops","totalTokens":7}]})"));
  EXPECT_EQ(body("top-10-users-by-requests"),
            json::parse(R"({"top10Users":[{"totalRequests":7,"user":"Support Agent"},
                                          {"totalRequests":7,"user":"Ops"}]})"));
  EXPECT_EQ(body("total-requests-per-day"),
            json::parse(R"({"totalRequestsPerDay":[{"date":"2024-01-01","totalRequests":3,
                                                    "totalRequestsWithError":1}]})"));
  EXPECT_EQ(body("agent-usage-per-user"),
            json::parse(R"({"agentUsage":[{"totalCost":0.125,"totalRequests":3,
                                           "totalTokens":812,"user":"jane@x.com"}]})"));
  EXPECT_EQ(metric_, RequestsMetric::kAgentUsagePerUser);
}

// The agent-usage rows are appended directly (no JsonWriter): the bytes must be the writer's.
TEST(RenderRequestsTest, AgentUsageBytesAreTheJsonWritersBytes) {
  auto reference = [](const std::vector<query::UsageRow>& rows) {
    std::string out;
    JsonWriter w(&out);
    w.BeginObject();
    w.Key("agentUsage").BeginArray();
    for (const query::UsageRow& u : rows) {
      w.BeginObject();
      w.Key("totalCost").Double(u.cost);
      w.Key("totalRequests").Int(static_cast<int64_t>(u.requests));
      w.Key("totalTokens").Int(static_cast<int64_t>(u.tokens));
      w.Key("user").String(u.user);
      w.EndObject();
    }
    w.EndArray();
    w.EndObject();
    return out;
  };
  query::RequestsResult r;
  EXPECT_EQ(RenderRequests(RequestsMetric::kAgentUsagePerUser, r), R"({"agentUsage":[]})");
  const std::string nul("a\0b", 3);
  r.usage = {{"jane@x.com", 0.125, 3, 812},
             {"q\"uote\\back\nline\x01\x1f\xc3\xa9", 3710.8825, 250660, 268413822},
             {"", 0, 0, 0},
             {nul, 1e-6, 1, 1},
             {"big", 9007199254.740993, UINT64_MAX >> 1, 1ULL << 40},
             {"neg", -2.5, 7, 7}};
  EXPECT_EQ(RenderRequests(RequestsMetric::kAgentUsagePerUser, r), reference(r.usage));
  for (int i = 0; i < 3000; ++i) {
    r.usage.push_back({r.usage[static_cast<size_t>(i) % 6].user, i * 0.001234567, uint64_t(i),
                       uint64_t(i) * 977});
  }
  EXPECT_EQ(RenderRequests(RequestsMetric::kAgentUsagePerUser, r), reference(r.usage));
}

}  // namespace
}  // namespace tally::http
