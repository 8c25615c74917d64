// Auth over a running tallyd: 401 for a missing or unknown token,
// 403 for a member-only key and for a workspace the key does not hold, 404 for an admin key on
// an unknown workspace, 200 with the `api_key:` header; status and body of each.

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/sha256.h"
#include "harness.h"
#include "reference.h"

namespace tally::integration {
namespace {

using nlohmann::json;

constexpr const char* kWsA = "8360bf61-4604-4f22-99dc-2afa910fd8c7";
constexpr const char* kWsB = "0d7f4c1e-b0a8-4a55-9d1e-6a2f3c9e7b10";
constexpr const char* kUnknownWs = "ffffffff-0000-4000-8000-000000000000";

const json kUnauthenticated = {{"message", "Unauthenticated."}};
const json kForbidden = {{"message", "This action is unauthorized."}};  // contract, 403
const json kNotFound = {{"error", "Workspace not found"}};              // contract, 404

std::string Event(int i, const std::string& ws) {
  json e = {
      {"specversion", "1.0"},
      {"id", "auth-" + std::to_string(i)},
      {"source", "it/auth"},
      {"type", "agent.executed"},
      {"time", "2026-02-2" + std::to_string(i % 8) + "T10:00:00Z"},
      {"data",
       {{"workspace_id", ws},
        {"user", {{"id", "u" + std::to_string(i % 3)}, {"name", "User " + std::to_string(i % 3)}}},
        {"agent", {{"id", "agent-1"}}}}}};
  return e.dump();
}

std::string MetricsBody(const std::string& ws) {
  return json({{"workspace_uuid", ws},
               {"entity", "agents"},
               {"metric", "executions"},
               {"aggregation", "count"},
               {"filters", {{"period", "30d"}}}})
      .dump();
}

class AuthE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    KeySpec owner_a;
    owner_a.name = "owner-a";
    owner_a.token = "tok-owner-a";
    owner_a.user_id = "42";
    owner_a.workspaces = {{kWsA, "owner"}};
    KeySpec member_a;
    member_a.name = "member-a";
    member_a.token = "tok-member-a";
    member_a.workspaces = {{kWsA, "member"}};
    KeySpec owner_b;
    owner_b.name = "owner-b";
    owner_b.token = "tok-owner-b";
    owner_b.workspaces = {{kWsB, "owner"}};
    stack_.keys() = {owner_a, member_a, owner_b, KeySpec::Admin("admin", "tok-admin")};
    ASSERT_TRUE(stack_.StartBroker(4));
    ASSERT_TRUE(stack_.StartTallyd());
    std::vector<std::string> lines, keys;
    for (int i = 0; i < 12; ++i) {
      std::string ws = i % 4 == 3 ? kWsB : kWsA;
      lines.push_back(Event(i, ws));
      keys.push_back(ws);
      ASSERT_EQ(ref_.Add(lines.back()), RefVerdict::kAccepted);
    }
    ASSERT_TRUE(stack_.Produce(lines, keys));
    ASSERT_TRUE(stack_.WaitForCatchUp(Millis(60000)));
  }

  // Sends and checks status and exact JSON body; `what` names the case in failures.
  void Expect(const std::string& what, const std::string& method, const std::string& target,
              const std::vector<std::pair<std::string, std::string>>& headers,
              const std::string& body, int status, const json& want_body) {
    SCOPED_TRACE(what + ": " + method + " " + target + " " + body);
    Result<HttpResponse> r = stack_.http().Send(method, target, headers, body);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->status, status) << r->body;
    json got = json::parse(r->body, nullptr, false);
    EXPECT_EQ(got, want_body) << "body: " << r->body;
    EXPECT_NE(r->Header("content-type").find("application/json"), std::string::npos)
        << "content-type: " << r->Header("content-type");
  }

  // A 200 whose total equals the reference's.
  void ExpectOk(const std::string& what,
                const std::vector<std::pair<std::string, std::string>>& headers,
                const std::string& ws) {
    SCOPED_TRACE(what);
    Result<HttpResponse> r =
        stack_.http().Send("POST", "/api/v1/workspaces/metrics", headers, MetricsBody(ws));
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_EQ(r->status, 200) << r->body;
    json got = json::parse(r->body, nullptr, false);
    RefQuery q;
    q.workspace_id = ws;
    q.period = "30d";
    ASSERT_TRUE(got.is_object() && got["data"]["total"].is_number()) << r->body;
    EXPECT_EQ(got["data"]["total"].get<double>(), ref_.Answer(q).total) << r->body;
  }

  Stack stack_;
  ReferenceModel ref_{Stack::kToday};
};

TEST_F(AuthE2E, StatusAndBodyOfEachCase) {
  const std::string path = "/api/v1/workspaces/metrics";
  const std::string a = MetricsBody(kWsA);

  // 401: no credentials, an unknown token, an empty token, the stored hash used as a token.
  Expect("no token", "GET", path, {}, a, 401, kUnauthenticated);
  Expect("no token, POST", "POST", path, {}, a, 401, kUnauthenticated);
  Expect("unknown bearer token", "GET", path, {{"Authorization", "Bearer not-a-token"}}, a, 401,
         kUnauthenticated);
  Expect("unknown api_key", "GET", path, {{"api_key", "not-a-token"}}, a, 401, kUnauthenticated);
  Expect("empty bearer token", "GET", path, {{"Authorization", "Bearer "}}, a, 401,
         kUnauthenticated);
  Expect("sha256 of a token used as the token", "GET", path,
         {{"Authorization", "Bearer " + Sha256Hex("tok-owner-a")}}, a, 401, kUnauthenticated);
  Expect("no token and an invalid request: 401 before 422", "GET", path, {},
         R"({"workspace_uuid":"x"})", 401, kUnauthenticated);
  {
    Result<HttpResponse> r = stack_.http().Send("GET", path, {}, a);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->Header("www-authenticate").rfind("Bearer", 0), 0u)
        << "401 without WWW-Authenticate: Bearer";
  }

  // 403: a member-only key (metrics need the owner role); a workspace the key does not hold.
  Expect("member-only key", "GET", path, {{"Authorization", "Bearer tok-member-a"}}, a, 403,
         kForbidden);
  Expect("member-only key, query form", "GET",
         path + "?workspace_uuid=" + kWsA + "&entity=agents&metric=executions&aggregation=count",
         {{"api_key", "tok-member-a"}}, "", 403, kForbidden);
  Expect("owner of another workspace", "POST", path, {{"Authorization", "Bearer tok-owner-b"}}, a,
         403, kForbidden);

  // 404: an admin key on a workspace nobody has seen.
  Expect("admin key, unknown workspace", "GET", path, {{"Authorization", "Bearer tok-admin"}},
         MetricsBody(kUnknownWs), 404, kNotFound);
  {
    // A non-admin key on an unknown workspace must not get data; 403 or 404 are both fine.
    Result<HttpResponse> r = stack_.http().Send(
        "GET", path, {{"Authorization", "Bearer tok-owner-b"}}, MetricsBody(kUnknownWs));
    ASSERT_TRUE(r);
    EXPECT_TRUE(r->status == 403 || r->status == 404) << r->status << " " << r->body;
  }

  // 200: owners (Bearer, any scheme case, api_key header) and the admin key.
  ExpectOk("owner, api_key header", {{"api_key", "tok-owner-a"}}, kWsA);
  ExpectOk("owner, Bearer", {{"Authorization", "Bearer tok-owner-a"}}, kWsA);
  ExpectOk("owner, lowercase bearer scheme", {{"Authorization", "bearer tok-owner-a"}}, kWsA);
  ExpectOk("owner of B on B", {{"api_key", "tok-owner-b"}}, kWsB);
  ExpectOk("admin on A", {{"Authorization", "Bearer tok-admin"}}, kWsA);
  ExpectOk("admin on B", {{"api_key", "tok-admin"}}, kWsB);

  // Operational endpoints need no token.
  for (const char* target : {"/healthz", "/readyz", "/metrics"}) {
    Result<HttpResponse> r = stack_.http().Send("GET", target);
    ASSERT_TRUE(r) << target;
    EXPECT_EQ(r->status, 200) << target << ": " << r->body;
  }
}

}  // namespace
}  // namespace tally::integration
