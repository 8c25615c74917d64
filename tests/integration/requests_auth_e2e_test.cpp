// Auth and validation of GET /v1/analytics/requests/<name> over a running tallyd, with
// status, Content-Type and body of each answer: 401 for a missing or unknown token (before any
// validation), 403 for an organization the key does not hold and for a key without
// organizations, 404 for an admin naming an organization without data and for an unknown
// endpoint, 422 naming the parameter at fault (startDate, endDate, agentName, organization-id,
// project-id) for missing, malformed, reversed and too long date ranges, too long agent names
// and conflicting header spellings; and the 200s next to them (both token headers, both header
// spellings, empty header values, range bounds) equal to the reference.

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "harness.h"
#include "requests_reference.h"

namespace tally::integration {
namespace {

using nlohmann::json;
using Headers = std::vector<std::pair<std::string, std::string>>;

constexpr const char* kWsA = "bbbbbbbb-0000-4000-8000-00000000000a";  // org_a
constexpr const char* kWsB = "bbbbbbbb-0000-4000-8000-00000000000b";  // org_b
constexpr const char* kPrefix = "/v1/analytics/requests/";
constexpr const char* kFeb = "startDate=2026-02-01&endDate=2026-02-28";

const json kUnauthenticated = {{"message", "Unauthenticated."}};
const json kForbidden = {{"message", "This action is unauthorized."}};

std::string Event(int i, const std::string& ws, const std::string& org) {
  json e = {{"specversion", "1.0"},
            {"id", "rauth-" + std::to_string(i)},
            {"source", "it/requests-auth"},
            {"type", "agent.executed"},
            {"time", "2026-02-1" + std::to_string(i % 10) + "T10:00:00Z"},
            {"data",
             {{"workspace_id", ws},
              {"organization_id", org},
              {"project_id", org + "-p" + std::to_string(i % 2)},
              {"user", {{"id", "u" + std::to_string(i % 4)}}},
              {"agent", {{"id", "agent-" + std::to_string(i % 3)}, {"name", "Agent"}}},
              {"tokens", 10 * i},
              {"cost_usd", 0.25 * i}}}};
  return e.dump();
}

Headers Bearer(const std::string& token) { return {{"Authorization", "Bearer " + token}}; }

Headers With(Headers h, const std::string& name, const std::string& value) {
  h.push_back({name, value});
  return h;
}

class RequestsAuthE2E : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    stack_ = new Stack();
    tallyd_ = new OrgTallyd(stack_);
    ASSERT_TRUE(stack_->StartBroker(2));
    // "none" has a workspace but no organization: no request analytics.
    OrgKeySpec none = OrgKeySpec::Holding("none", "tok-none", {});
    none.workspaces = {{kWsA, "owner"}};
    ASSERT_TRUE(tallyd_->Start({OrgKeySpec::Holding("a", "tok-a", {"org_a"}),
                                OrgKeySpec::Holding("b", "tok-b", {"org_b"}),
                                OrgKeySpec::Holding("ab", "tok-ab", {"org_a", "org_b"}), none,
                                OrgKeySpec::Admin("admin", "tok-admin")}));
    std::vector<std::string> lines, keys;
    for (int i = 0; i < 24; ++i) {
      const bool a = i % 3 != 0;
      lines.push_back(Event(i, a ? kWsA : kWsB, a ? "org_a" : "org_b"));
      keys.push_back(a ? kWsA : kWsB);
      ref_.Add(lines.back());
    }
    ASSERT_EQ(ref_.accepted(), 24u);
    ASSERT_TRUE(stack_->Produce(lines, keys));
    ASSERT_TRUE(tallyd_->WaitForCatchUp(Millis(60000)));
    ready_ = true;
  }
  static void TearDownTestSuite() {
    delete tallyd_;
    delete stack_;
  }
  void SetUp() override { ASSERT_TRUE(ready_) << "suite setup failed"; }

  static Result<HttpResponse> Get(const std::string& target, const Headers& headers) {
    return stack_->http().Send("GET", target, headers);
  }

  // Status, JSON Content-Type and the exact body.
  static void Expect(const std::string& target, const Headers& headers, int status,
                     const json& want) {
    SCOPED_TRACE("GET " + target);
    Result<HttpResponse> r = Get(target, headers);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->status, status) << r->body;
    EXPECT_EQ(json::parse(r->body, nullptr, false), want) << r->body;
    EXPECT_NE(r->Header("content-type").find("application/json"), std::string::npos)
        << r->Header("content-type");
  }

  // A 422 {"message": "...", "errors": {"<field>": ["...", ...], ...}} whose errors name every
  // field of `fields` and nothing outside `allowed` (default: `fields`).
  static void Expect422(const std::string& target, const Headers& headers,
                        const std::set<std::string>& fields,
                        std::optional<std::set<std::string>> allowed = std::nullopt) {
    SCOPED_TRACE("GET " + target);
    if (!allowed) allowed = fields;
    Result<HttpResponse> r = Get(target, headers);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->status, 422) << r->body;
    EXPECT_NE(r->Header("content-type").find("application/json"), std::string::npos)
        << r->Header("content-type");
    json body = json::parse(r->body, nullptr, false);
    ASSERT_TRUE(body.is_object()) << r->body;
    ASSERT_TRUE(body.contains("message") && body["message"].is_string()) << r->body;
    EXPECT_FALSE(body["message"].get<std::string>().empty()) << r->body;
    ASSERT_TRUE(body.contains("errors") && body["errors"].is_object()) << r->body;
    EXPECT_EQ(body.size(), 2u) << r->body;
    for (const std::string& f : fields) EXPECT_TRUE(body["errors"].contains(f)) << r->body;
    for (const auto& [field, messages] : body["errors"].items()) {
      EXPECT_TRUE(allowed->contains(field)) << "unexpected field " << field << ": " << r->body;
      ASSERT_TRUE(messages.is_array() && !messages.empty()) << r->body;
      for (const json& m : messages) {
        EXPECT_TRUE(m.is_string() && !m.get<std::string>().empty()) << r->body;
      }
    }
  }

  // A 200 equal to the reference for `q`.
  static void ExpectRef(const std::string& name, const std::string& query, const Headers& headers,
                        const ReqQuery& q) {
    const std::string target = std::string(kPrefix) + name + "?" + query;
    SCOPED_TRACE("GET " + target);
    Result<HttpResponse> r = Get(target, headers);
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_EQ(r->status, 200) << r->body;
    EXPECT_NE(r->Header("content-type").find("application/json"), std::string::npos);
    json got = json::parse(r->body, nullptr, false);
    std::string diff = DiffRequestsJson(got, ref_.Answer(name, q));
    EXPECT_TRUE(diff.empty()) << diff;
  }

  static ReqQuery Query(std::optional<std::set<std::string>> orgs, std::string start,
                        std::string end) {
    ReqQuery q;
    q.organizations = std::move(orgs);
    q.start_date = std::move(start);
    q.end_date = std::move(end);
    return q;
  }

  static Stack* stack_;
  static OrgTallyd* tallyd_;
  static inline RequestsReference ref_;
  static inline bool ready_ = false;
};

Stack* RequestsAuthE2E::stack_ = nullptr;
OrgTallyd* RequestsAuthE2E::tallyd_ = nullptr;

std::string Users(const std::string& query) {
  return std::string(kPrefix) + "total-active-users?" + query;
}

TEST_F(RequestsAuthE2E, Unauthenticated) {
  for (const char* endpoint : kRequestEndpoints) {
    Expect(std::string(kPrefix) + endpoint + "?" + kFeb, {}, 401, kUnauthenticated);
  }
  Expect(Users(kFeb), Bearer("nope"), 401, kUnauthenticated);
  Expect(Users(kFeb), {{"api_key", "nope"}}, 401, kUnauthenticated);
  Expect(Users(kFeb), {{"Authorization", "tok-a"}}, 401, kUnauthenticated);  // no "Bearer "
  Expect(Users(kFeb), {{"Authorization", "Bearer "}}, 401, kUnauthenticated);
  // Before validation and before the organization check.
  Expect(Users(""), {}, 401, kUnauthenticated);
  Expect(Users("startDate=garbage"), Bearer("nope"), 401, kUnauthenticated);
  Expect(Users(kFeb), {{"organization-id", "org_b"}}, 401, kUnauthenticated);
}

TEST_F(RequestsAuthE2E, Forbidden) {
  // An organization the key does not hold, in either spelling, known or not.
  for (const char* header : {"organization-id", "OrganizationId"}) {
    for (const char* endpoint : kRequestEndpoints) {
      Expect(std::string(kPrefix) + endpoint + "?" + kFeb, With(Bearer("tok-a"), header, "org_b"),
             403, kForbidden);
    }
    Expect(Users(kFeb), With(Bearer("tok-b"), header, "org_a"), 403, kForbidden);
    Expect(Users(kFeb), With(Bearer("tok-a"), header, "org_nowhere"), 403, kForbidden);
    Expect(Users(kFeb), With({{"api_key", "tok-ab"}}, header, "org_c"), 403, kForbidden);
  }
  // A key without organizations (it has a workspace), with and without a header.
  Expect(Users(kFeb), Bearer("tok-none"), 403, kForbidden);
  Expect(Users(kFeb), {{"api_key", "tok-none"}}, 403, kForbidden);
  Expect(Users(kFeb), With(Bearer("tok-none"), "organization-id", "org_a"), 403, kForbidden);
  Expect(std::string(kPrefix) + "agent-usage-per-user?" + kFeb, Bearer("tok-none"), 403,
         kForbidden);
}

TEST_F(RequestsAuthE2E, NotFound) {
  // An admin naming an organization without request data.
  for (const char* header : {"organization-id", "OrganizationId"}) {
    SCOPED_TRACE(header);
    Result<HttpResponse> r = Get(Users(kFeb), With(Bearer("tok-admin"), header, "org_nowhere"));
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->status, 404) << r->body;
    json body = json::parse(r->body, nullptr, false);
    EXPECT_TRUE(body.is_object() && body.contains("message") && body["message"].is_string())
        << r->body;
    EXPECT_NE(r->Header("content-type").find("application/json"), std::string::npos);
  }
  // Unknown endpoints.
  for (const char* name : {"nope", "total-active-user", "top-10-agents", "TOTAL-ACTIVE-USERS"}) {
    SCOPED_TRACE(name);
    Result<HttpResponse> r = Get(std::string(kPrefix) + name + "?" + kFeb, Bearer("tok-admin"));
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->status, 404) << r->body;
    json body = json::parse(r->body, nullptr, false);
    EXPECT_TRUE(body.is_object() && body.contains("message")) << r->body;
  }
}

TEST_F(RequestsAuthE2E, BadDates) {
  const Headers a = Bearer("tok-a");
  // Missing, on every endpoint.
  for (const char* endpoint : kRequestEndpoints) {
    const std::string p = std::string(kPrefix) + endpoint + "?";
    Expect422(p + "endDate=2026-02-28", a, {"startDate"});
    Expect422(p + "startDate=2026-02-01", a, {"endDate"});
    Expect422(p + "agentName=x", a, {"startDate", "endDate"});
  }
  Expect422(Users(""), a, {"startDate", "endDate"});
  Expect422(Users("startDate=&endDate=2026-02-28"), a, {"startDate"});
  Expect422(Users("startDate=2026-02-01&endDate="), a, {"endDate"});
  // Not YYYY-MM-DD (or not a date).
  for (const char* bad :
       {"2024-13-01", "2024-1-1", "garbage", "2024-02-30", "2023-02-29", "2024-00-10", "2024-01-32",
        "20240101", "2024/01/01", "2024-01-01T00:00:00Z", "%202024-01-01", "2024-01-01%20",
        "-2024-01-01", "+2024-01-01"}) {
    SCOPED_TRACE(bad);
    Expect422(Users(std::string("startDate=") + bad + "&endDate=2024-01-31"), a, {"startDate"});
    Expect422(Users(std::string("startDate=2024-01-01&endDate=") + bad), a, {"endDate"});
  }
  // Both malformed: both named.
  Expect422(Users("startDate=x&endDate=y"), a, {"startDate", "endDate"});
  // endDate before startDate.
  Expect422(Users("startDate=2026-02-10&endDate=2026-02-09"), a, {"endDate"});
  Expect422(Users("startDate=2026-01-01&endDate=2025-12-31"), a, {"endDate"});
  // More than 366 days: startDate or endDate may carry the error.
  const std::set<std::string> either = {"startDate", "endDate"};
  for (const char* q : {"startDate=2024-01-01&endDate=2025-01-01",  // 367 days
                        "startDate=2025-01-01&endDate=2026-01-02",  // 367 days
                        "startDate=2020-01-01&endDate=2026-02-28"}) {
    SCOPED_TRACE(q);
    Result<HttpResponse> r = Get(Users(q), a);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->status, 422) << r->body;
    json body = json::parse(r->body, nullptr, false);
    ASSERT_TRUE(body.is_object() && body.contains("errors") && body["errors"].is_object())
        << r->body;
    EXPECT_TRUE(body.contains("message") && body["message"].is_string()) << r->body;
    EXPECT_FALSE(body["errors"].empty()) << r->body;
    for (const auto& [field, messages] : body["errors"].items()) {
      EXPECT_TRUE(either.contains(field)) << field << ": " << r->body;
      EXPECT_TRUE(messages.is_array() && !messages.empty()) << r->body;
    }
  }
  // The limits themselves are fine: one day, 366 days (a leap year), 366 days across years.
  const ReqQuery org_a = Query(std::set<std::string>{"org_a"}, "", "");
  auto range = [&](const std::string& start, const std::string& end) {
    ReqQuery q = org_a;
    q.start_date = start;
    q.end_date = end;
    return q;
  };
  ExpectRef("total-active-users", "startDate=2026-02-12&endDate=2026-02-12", a,
            range("2026-02-12", "2026-02-12"));
  ExpectRef("total-requests-per-day", "startDate=2024-01-01&endDate=2024-12-31", a,
            range("2024-01-01", "2024-12-31"));
  ExpectRef("average-requests-per-day", "startDate=2025-03-01&endDate=2026-03-01", a,
            range("2025-03-01", "2026-03-01"));
  ExpectRef("average-requests-per-day", "startDate=2025-03-01&endDate=2026-03-01&agentName=", a,
            range("2025-03-01", "2026-03-01"));
}

TEST_F(RequestsAuthE2E, AgentNameLength) {
  // At most 256 bytes (schemas/openapi.yaml); longer is a 422 naming agentName.
  const Headers a = Bearer("tok-a");
  Expect422(Users(std::string(kFeb) + "&agentName=" + std::string(257, 'x')), a, {"agentName"});
  Expect422(Users(std::string(kFeb) + "&agentName=" + std::string(5000, 'x')), a, {"agentName"});
  Expect422(Users("agentName=" + std::string(300, 'x')), a, {"startDate", "endDate", "agentName"});
  ReqQuery q = Query(std::set<std::string>{"org_a"}, "2026-02-01", "2026-02-28");
  q.agent_name = std::string(256, 'x');
  ExpectRef("total-active-users", std::string(kFeb) + "&agentName=" + q.agent_name, a, q);
  q.agent_name = "Agent";
  ExpectRef("top-10-agents-by-requests", std::string(kFeb) + "&agentName=Agent", a, q);
}

TEST_F(RequestsAuthE2E, HeaderSpellings) {
  // Conflicting spellings of the organization header: 422 naming organization-id.
  Headers h = With(With(Bearer("tok-ab"), "organization-id", "org_a"), "OrganizationId", "org_b");
  Expect422(Users(kFeb), h, {"organization-id"});
  h = With(With(Bearer("tok-admin"), "OrganizationId", "org_a"), "organization-id", "org_b");
  Expect422(Users(kFeb), h, {"organization-id"});
  // Likewise for the project header, naming project-id.
  h = With(With(Bearer("tok-a"), "project-id", "org_a-p0"), "ProjectId", "org_a-p1");
  Expect422(Users(kFeb), h, {"project-id"});
  // Empty values count as absent.
  ExpectRef("total-active-users", kFeb, With(Bearer("tok-a"), "organization-id", ""),
            Query(std::set<std::string>{"org_a"}, "2026-02-01", "2026-02-28"));
  ExpectRef("total-active-users", kFeb, With(Bearer("tok-ab"), "ProjectId", ""),
            Query(std::set<std::string>{"org_a", "org_b"}, "2026-02-01", "2026-02-28"));
  // The same value in both: no conflict.
  h = With(With(Bearer("tok-ab"), "organization-id", "org_b"), "OrganizationId", "org_b");
  ExpectRef("total-active-users", kFeb, h,
            Query(std::set<std::string>{"org_b"}, "2026-02-01", "2026-02-28"));
}

TEST_F(RequestsAuthE2E, Allowed) {
  const ReqQuery a = Query(std::set<std::string>{"org_a"}, "2026-02-01", "2026-02-28");
  const ReqQuery b = Query(std::set<std::string>{"org_b"}, "2026-02-01", "2026-02-28");
  const ReqQuery ab = Query(std::set<std::string>{"org_a", "org_b"}, "2026-02-01", "2026-02-28");
  const ReqQuery all = Query(std::nullopt, "2026-02-01", "2026-02-28");
  for (const char* endpoint : kRequestEndpoints) {
    ExpectRef(endpoint, kFeb, Bearer("tok-a"), a);
    ExpectRef(endpoint, kFeb, {{"api_key", "tok-b"}}, b);
    ExpectRef(endpoint, kFeb, Bearer("tok-ab"), ab);
    ExpectRef(endpoint, kFeb, With(Bearer("tok-ab"), "OrganizationId", "org_a"), a);
    ExpectRef(endpoint, kFeb, Bearer("tok-admin"), all);
    ExpectRef(endpoint, kFeb, With({{"api_key", "tok-admin"}}, "organization-id", "org_b"), b);
  }
  // Project narrowing in both spellings.
  ReqQuery p = a;
  p.project_id = "org_a-p1";
  ExpectRef("agent-usage-per-user", kFeb, With(Bearer("tok-a"), "project-id", "org_a-p1"), p);
  ExpectRef("agent-usage-per-user", kFeb, With(Bearer("tok-a"), "ProjectId", "org_a-p1"), p);
  // Sanity: org_a and org_b differ (the comparisons above could not pass by mixing them).
  EXPECT_NE(ref_.Answer("total-requests-per-day", a), ref_.Answer("total-requests-per-day", b));
  EXPECT_NE(ref_.Answer("agent-usage-per-user", a), ref_.Answer("agent-usage-per-user", ab));
}

}  // namespace
}  // namespace tally::integration
