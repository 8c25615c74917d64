// Super Agents end to end: `tally broker`, `tallyd`, events through Kafka,
// then GET /api/v1/monitoring/{workspace_id}/superagents over real sockets, compared with a
// brute-force reference computed here from the events the test built: every sort field in both
// directions, search, visibility, from/to, deletions (and revival by copy) and renames, a full
// cursor walk of 500+ agents while new events keep arriving between pages, tampered and foreign
// cursors, validation and auth cases with status and body.

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "harness.h"
#include "reference.h"
#include "superagents_reference.h"

// Specs below use designated initializers that leave the optional fields at their defaults on
// purpose.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace tally::integration {
namespace {

using nlohmann::json;
using Headers = std::vector<std::pair<std::string, std::string>>;

constexpr const char* kWs = "5a5a5a5a-0000-4000-8000-000000000001";
constexpr const char* kWs2 = "5a5a5a5a-0000-4000-8000-000000000002";
constexpr const char* kUnknownWs = "5a5a5a5a-0000-4000-8000-00000000ffff";

const Headers kAdmin = {{"Authorization", "Bearer tok-admin"}};
const Headers kMember = {{"api_key", "tok-member"}};  // member of kWs and kWs2
const Headers kOther = {{"api_key", "tok-other"}};    // member of kWs2 only

// One hand-built event, kept as data so the reference never parses tally's output; an empty
// `ws` stands for kWs (Send fills it in).
using Spec = SuperagentsEvent;

int g_next_id = 0;

std::string Line(const Spec& s) {
  json user = {{"id", s.user}};
  if (!s.email.empty()) user["email"] = s.email;
  json agent = {{"id", s.agent}};
  if (!s.name.empty()) agent["name"] = s.name;
  if (!s.visibility.empty()) agent["visibility"] = s.visibility;
  if (!s.owner.empty()) agent["owner_user_id"] = s.owner;
  json data = {{"workspace_id", s.ws}, {"user", user}, {"agent", agent}};
  if (s.message >= 0) data["message_credits"] = s.message;
  if (s.integration >= 0) data["integration_credits"] = s.integration;
  return json{{"specversion", "1.0"},
              {"id", "sa-" + std::to_string(++g_next_id)},
              {"source", "it/superagents"},
              {"type", s.type},
              {"time", s.time},
              {"data", data}}
      .dump();
}

json Normalize(json body) { return NormalizeSuperagents(std::move(body)); }

std::string Two(int v) { return (v < 10 ? "0" : "") + std::to_string(v); }

// The base set: 520 agents of kWs and 3 of kWs2. Today is 2026-03-01 (Stack::kNow).
std::vector<Spec> BaseEvents() {
  static const char* kVis[] = {"private", "workspace", "public_with_login", "public_without_login"};
  std::vector<Spec> v;
  for (int i = 0; i < 520; ++i) {
    char id[16];
    std::snprintf(id, sizeof id, "sa-%04d", i);
    const std::string user = "u" + std::to_string(i % 7);
    const std::string email = i % 7 == 6 ? "" : "User" + std::to_string(i % 7) + "@Example.com";
    Spec c{.type = "agent.created",
           .time = "2026-01-" + Two(1 + i % 28) + "T" + Two(i % 24) + ":00:00Z",
           .user = user,
           .email = email,
           .agent = id,
           .name = (i % 2 ? "Bot " : "helper ") + std::to_string(i % 40),
           .visibility = kVis[i % 4]};
    if (i % 5 == 0) c.owner = "owner_" + std::to_string(i % 3);
    v.push_back(c);
    if (i % 50 == 7) {  // deleted; every other one copied back (live again)
      v.push_back(
          {.type = "agent.deleted", .time = "2026-02-01T00:00:00Z", .user = user, .agent = id});
      if (i % 100 == 7) {
        v.push_back(
            {.type = "agent.copied", .time = "2026-02-02T00:00:00Z", .user = "u5", .agent = id});
      }
    }
    if (i % 9 == 0) {
      v.push_back({.type = "agent.updated",
                   .time = "2026-02-10T00:00:00Z",
                   .user = user,
                   .agent = id,
                   .name = "Renamed " + std::to_string(i)});
    }
    if (i % 3 == 0) {
      for (int k = 0; k < 2; ++k) {
        v.push_back({.type = "agent.executed",
                     .time = "2026-02-15T10:00:00Z",
                     .user = "e" + std::to_string((i + k) % 11),
                     .agent = id,
                     .message = double(i % 13),
                     .integration = double(i % 4)});
      }
      v.push_back({.type = "agent.executed",
                   .time = "2026-01-20T10:00:00Z",
                   .user = "old",
                   .agent = id,
                   .message = 5,
                   .integration = 5});
    }
    if (i % 6 == 0) {
      v.push_back({.type = "agent.executed",
                   .time = "2026-03-01T08:00:00Z",
                   .user = "e" + std::to_string(i % 5),
                   .agent = id,
                   .message = 2,
                   .integration = 1});
    }
  }
  for (int i = 0; i < 3; ++i) {
    v.push_back({.ws = kWs2,
                 .type = "agent.created",
                 .time = "2026-02-01T00:00:00Z",
                 .user = "w2",
                 .agent = "w2-" + std::to_string(i),
                 .name = "Other"});
  }
  return v;
}

class SuperagentsE2E : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    stack_ = new Stack();
    ref_ = new SuperagentsReference();
    KeySpec member;
    member.name = "member";
    member.token = "tok-member";
    member.workspaces = {{kWs, "member"}, {kWs2, "member"}};
    KeySpec other;
    other.name = "other";
    other.token = "tok-other";
    other.workspaces = {{kWs2, "member"}};
    stack_->keys() = {member, other, KeySpec::Admin("admin", "tok-admin")};
    ASSERT_TRUE(stack_->StartBroker(2));
    ASSERT_TRUE(stack_->StartTallyd());
    ASSERT_TRUE(Send(BaseEvents()));
  }
  static void TearDownTestSuite() {
    delete stack_;
    delete ref_;
  }

  static ::testing::AssertionResult Send(const std::vector<Spec>& specs) {
    std::vector<std::string> lines, keys;
    for (const Spec& s : specs) {
      Spec e = s;
      if (e.ws.empty()) e.ws = kWs;
      lines.push_back(Line(e));
      keys.push_back(e.ws);
      ref_->Add(e);
    }
    auto r = stack_->Produce(lines, keys);
    if (!r) return r;
    return stack_->WaitForCatchUp(Millis(60000));
  }

  static Result<HttpResponse> Get(const std::string& ws, const std::string& query,
                                  const Headers& headers = kMember) {
    return stack_->http().Send("GET", "/api/v1/monitoring/" + ws + "/superagents?" + query,
                               headers);
  }

  // Walks every page of `query` (limit 50) and compares the concatenation with the reference.
  static void ExpectWalk(const std::string& query, const std::string& sort,
                         const std::string& search = "", const std::string& visibility = "",
                         int64_t from = -1, int64_t to = -1) {
    SCOPED_TRACE(query);
    const int64_t today = *RefParseDay(Stack::kToday);
    if (from < 0) from = today, to = today;  // first day of March .. today
    std::vector<json> want = ref_->Rows(kWs, from, to, sort, search, visibility, today);
    std::vector<json> got;
    std::string cursor;
    for (int page = 0; page < 20; ++page) {
      std::string q = query + "&limit=50";
      if (!cursor.empty()) q += "&cursor=" + UrlEncode(cursor);
      auto r = Get(kWs, q);
      ASSERT_TRUE(r) << r.error().message;
      ASSERT_EQ(r->status, 200) << r->body;
      json body = Normalize(json::parse(r->body));
      EXPECT_EQ(body["pagination"]["total"], want.size());
      for (json& row : body["superagents"]) got.push_back(row);
      if (!body["pagination"]["has_more"].get<bool>()) break;
      cursor = body["pagination"]["next_cursor"];
    }
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], want[i]) << "row " << i;
  }

  static inline Stack* stack_ = nullptr;
  static inline SuperagentsReference* ref_ = nullptr;
};

TEST_F(SuperagentsE2E, CursorWalkIsStableWhileEventsArrive) {
  const int64_t today = *RefParseDay(Stack::kToday);
  std::vector<json> want = ref_->Rows(kWs, today, today, "-total_credits_consumed", "", "", today);
  ASSERT_GT(want.size(), 500u);
  std::vector<json> got;
  std::set<std::string> ids;
  std::string cursor;
  int batch = 0;
  for (int page = 0; page < 20; ++page) {
    std::string q = "limit=50";
    if (!cursor.empty()) q += "&cursor=" + UrlEncode(cursor);
    auto r = Get(kWs, q);
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_EQ(r->status, 200) << r->body;
    json body = Normalize(json::parse(r->body));
    EXPECT_EQ(body["pagination"]["total"], want.size());
    for (json& row : body["superagents"]) {
      EXPECT_TRUE(ids.insert(row["superagent_id"]).second) << "twice: " << row.dump();
      got.push_back(row);
    }
    // Between pages: new agents, and credits today on existing ones (which would reorder a
    // live list).
    std::vector<Spec> more;
    for (int k = 0; k < 10; ++k, ++batch) {
      char id[16];
      std::snprintf(id, sizeof id, "sb-%04d", batch);
      more.push_back({.type = "agent.created",
                      .time = "2026-02-20T00:00:00Z",
                      .user = "u1",
                      .agent = id,
                      .name = "Late " + std::to_string(batch)});
      char old[16];
      std::snprintf(old, sizeof old, "sa-%04d", (batch * 37) % 520);
      more.push_back({.type = "agent.executed",
                      .time = "2026-03-01T09:00:00Z",
                      .user = "x",
                      .agent = old,
                      .message = 1000,
                      .integration = 1});
    }
    ASSERT_TRUE(Send(more));
    if (!body["pagination"]["has_more"].get<bool>()) {
      EXPECT_TRUE(body["pagination"]["next_cursor"].is_null());
      break;
    }
    cursor = body["pagination"]["next_cursor"];
  }
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], want[i]) << "row " << i;
  // A fresh first page sees the new events.
  auto r = Get(kWs, "limit=1");
  ASSERT_TRUE(r);
  json body = json::parse(r->body);
  EXPECT_GT(body["pagination"]["total"].get<size_t>(), want.size());
  EXPECT_GE(body["superagents"][0]["total_credits_consumed"].get<double>(), 1001);
}

TEST_F(SuperagentsE2E, EverySortFieldBothDirections) {
  for (const char* f : {"superagent_name", "created_at", "created_by_email", "owner_user_id",
                        "active_users_last_30d", "message_credits_consumed",
                        "integration_credits_consumed", "total_credits_consumed"}) {
    ExpectWalk(std::string("sort=") + f, f);
    ExpectWalk(std::string("sort=-") + f, std::string("-") + f);
  }
  ExpectWalk("x=1", "-total_credits_consumed");  // the default sort
}

TEST_F(SuperagentsE2E, SearchVisibilityAndRange) {
  ExpectWalk("search=renamed", "-total_credits_consumed", "renamed");
  ExpectWalk("search=USER3%40", "-total_credits_consumed", "USER3@");
  ExpectWalk("search=bot%201&sort=superagent_name", "superagent_name", "bot 1");
  for (const char* v :
       {"private", "workspace", "public_with_login", "public_without_login", "public"}) {
    ExpectWalk(std::string("visibility=") + v, "-total_credits_consumed", "", v);
  }
  ExpectWalk("from=2026-02-01&to=2026-02-28&sort=-message_credits_consumed",
             "-message_credits_consumed", "", "", *RefParseDay("2026-02-01"),
             *RefParseDay("2026-02-28"));
  ExpectWalk("from=2026-01-01&to=2026-03-01", "-total_credits_consumed", "", "",
             *RefParseDay("2026-01-01"), *RefParseDay("2026-03-01"));
}

TEST_F(SuperagentsE2E, CursorsAreCheckedAndBound) {
  auto first = Get(kWs, "limit=5");
  ASSERT_TRUE(first);
  const std::string cursor = json::parse(first->body)["pagination"]["next_cursor"];
  auto expect400 = [&](const std::string& ws, const std::string& c) {
    auto r = Get(ws, "cursor=" + UrlEncode(c));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400) << r->body;
    json body = json::parse(r->body, nullptr, false);
    EXPECT_EQ(body["message"], "The cursor is invalid.") << r->body;
    EXPECT_TRUE(body["errors"]["cursor"].is_array()) << r->body;
  };
  expect400(kWs, "eyJsYXN0X2lkIjoiMTIzIn0=");
  std::string tampered = cursor;
  tampered[tampered.size() / 2] = tampered[tampered.size() / 2] == 'A' ? 'B' : 'A';
  expect400(kWs, tampered);
  expect400(kWs2, cursor);  // the same key holds both workspaces: still refused
  auto ok = Get(kWs, "cursor=" + UrlEncode(cursor));
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200) << ok->body;
}

TEST_F(SuperagentsE2E, AuthAndValidation) {
  auto expect = [](const std::string& ws, const std::string& q, const Headers& h, int status,
                   const json& body) {
    auto r = Get(ws, q, h);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->status, status) << q << " " << r->body;
    EXPECT_EQ(json::parse(r->body, nullptr, false), body) << q;
  };
  expect(kWs, "", {}, 401, {{"message", "Unauthenticated."}});
  expect(kWs, "", {{"api_key", "nope"}}, 401, {{"message", "Unauthenticated."}});
  expect(kWs, "", kOther, 403, {{"message", "This action is unauthorized."}});
  expect(kUnknownWs, "", kOther, 403, {{"message", "This action is unauthorized."}});
  expect(kUnknownWs, "", kAdmin, 404, {{"error", "Workspace not found"}});
  auto r = Get(kWs2, "", kOther);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(json::parse(r->body)["pagination"]["total"], 3);
  auto invalid = [&](const std::string& q, const std::string& field, const std::string& msg) {
    expect(kWs, q, kMember, 422, {{"message", msg}, {"errors", {{field, {msg}}}}});
  };
  invalid("limit=0", "limit", "The limit field must be between 1 and 50.");
  invalid("limit=51", "limit", "The limit field must be between 1 and 50.");
  invalid("from=2026-02-01", "to", "The to field is required when from is present.");
  invalid("to=2026-02-01", "from", "The from field is required when to is present.");
  invalid("from=2026-13-01&to=2026-02-01", "from", "The from field must match the format Y-m-d.");
  invalid("from=2026-02-02&to=2026-02-01", "to",
          "The to field must be a date after or equal to from.");
  invalid("sort=-nope", "sort", "The selected sort is invalid.");
  invalid("visibility=hidden", "visibility", "The selected visibility is invalid.");
  invalid("search=" + std::string(101, 'a'), "search",
          "The search field must not be greater than 100 characters.");
}

}  // namespace
}  // namespace tally::integration
