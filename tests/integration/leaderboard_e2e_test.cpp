// Leaderboard end to end: `tally broker`, `tallyd`, events through
// Kafka, then GET /api/agents/leaderboard over real sockets, compared with a simple reference
// computed here from the raw lines (nlohmann): growth (including a previous count of 0), ties
// (competition ranking), the user filter in its comma / repeated / array forms, organization
// resolution (unique, unknown, ambiguous), default and explicit ranges, limit, and every auth
// case with status and body. Hand-built events pin the semantics; generated events
// (gen::Generator) cover volume, numeric and string user ids and changing profiles.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <set>

#include "harness.h"
#include "leaderboard_reference.h"
#include "metrics_compare.h"
#include "reference.h"

namespace tally::integration {
namespace {

using nlohmann::json;
using Headers = std::vector<std::pair<std::string, std::string>>;

constexpr const char* kWsHand = "11111111-1111-4111-8111-111111111111";  // org_hand
constexpr const char* kWsDup1 = "22222222-2222-4222-8222-222222222222";  // org_dup
constexpr const char* kWsDup2 = "33333333-3333-4333-8333-333333333333";  // org_dup
constexpr const char* kUnknownWs = "ffffffff-0000-4000-8000-000000000000";
constexpr const char* kPath = "/api/agents/leaderboard";

const json kUnauthenticated = {{"message", "Unauthenticated."}};
const json kForbidden = {{"message", "This action is unauthorized."}};
const json kNotFound = {{"error", "Workspace not found"}};

// ---------------------------------------------------------------------------------------------
// Hand-built events.

int g_next_id = 0;

std::string Ev(const std::string& ws, const std::string& org, const json& user_id,
               const std::string& type, const std::string& time, const std::string& name = "",
               const std::string& photo = "") {
  json user = {{"id", user_id}};
  if (!name.empty()) user["name"] = name;
  if (!photo.empty()) user["photo"] = photo;
  json data = {{"workspace_id", ws}, {"user", user}};
  if (!org.empty()) data["organization_id"] = org;
  const std::string entity = type.substr(0, type.find('.'));
  data[entity] = {{"id", entity + "-" + std::to_string(++g_next_id)}};
  return json{{"specversion", "1.0"},
              {"id", "lb-" + std::to_string(g_next_id)},
              {"source", "it/leaderboard"},
              {"type", type},
              {"time", time},
              {"data", data}}
      .dump();
}

// Today is 2026-03-01 (Stack::kNow). Default range 2026-01-31..2026-03-01, previous period
// 2026-01-01..2026-01-30.
std::vector<std::string> HandEvents() {
  std::vector<std::string> v;
  const std::string h = kWsHand, o = "org_hand";
  const std::string jane_photo = "https://example.com/storage/photos/user-42.jpg";
  auto times = [&](int n, const std::string& ws, const std::string& org, const json& user,
                   const std::string& time, const std::string& name = "",
                   const std::string& photo = "") {
    for (int i = 0; i < n; ++i) v.push_back(Ev(ws, org, user, "agent.created", time, name, photo));
  };
  // 42 (sent as a JSON number): 3 now, 2 before -> 50%.
  times(3, h, o, 42, "2026-02-20T09:00:00Z", "Jane Smith", jane_photo);
  times(2, h, o, 42, "2026-01-15T09:00:00Z", "Jane Smith", jane_photo);
  times(1, h, o, 42, "2025-12-31T23:59:59Z");  // before both periods
  times(1, h, o, 42, "2026-03-02T00:00:00Z");  // after today: outside the range
  // u_bob: 3 now, none before -> null growth; ties with 42 (rank 1, 1).
  times(3, h, o, "u_bob", "2026-02-25T10:00:00+02:00", "Bob");
  // 7: 1 now, 3 before -> -66.67; renamed later by an executed event.
  times(1, h, o, "7", "2026-02-27T08:00:00Z", "Old Seven", "https://example.com/7-old.jpg");
  times(3, h, o, "7", "2026-01-10T08:00:00Z", "Older Seven");
  v.push_back(Ev(h, o, "7", "agent.executed", "2026-02-28T08:00:00Z", "Seven",
                 "https://example.com/7.jpg"));
  // 8: none now, 1 before -> listed with -100.
  times(1, h, o, "8", "2026-01-05T08:00:00Z");
  // 9 only runs agents; 10 only creates workflows: neither is listed.
  v.push_back(Ev(h, o, "9", "agent.executed", "2026-02-20T08:00:00Z", "Nine"));
  v.push_back(Ev(h, o, "10", "workflow.created", "2026-02-20T08:00:00Z", "Ten"));
  // Another organization with two workspaces (ambiguous); 42 is busy there too.
  times(5, kWsDup1, "org_dup", 42, "2026-02-21T09:00:00Z", "Jane in Dup");
  times(1, kWsDup2, "org_dup", "x", "2026-02-21T09:00:00Z");
  return v;
}

// ---------------------------------------------------------------------------------------------

class LeaderboardE2E : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    stack_ = new Stack();
    ref_ = new LeaderboardReference();
    model_ = new ReferenceModel(Stack::kToday);
    KeySpec member_h;
    member_h.name = "member-hand";
    member_h.token = "tok-member-hand";
    member_h.workspaces = {{kWsHand, "member"}};
    KeySpec owner_h;
    owner_h.name = "owner-hand";
    owner_h.token = "tok-owner-hand";
    owner_h.workspaces = {{kWsHand, "owner"}};
    KeySpec member_d;
    member_d.name = "member-dup";
    member_d.token = "tok-member-dup";
    member_d.workspaces = {{kWsDup1, "member"}};
    stack_->keys() = {member_h, owner_h, member_d, KeySpec::Admin("admin", "tok-admin")};
    ASSERT_TRUE(stack_->StartBroker(4));
    ASSERT_TRUE(stack_->StartTallyd());

    std::vector<std::string> lines = HandEvents(), keys;
    for (const std::string& l : lines) keys.push_back(json::parse(l)["data"]["workspace_id"]);
    gen::GenOptions o;
    o.seed = 4;
    o.events = 8000;
    o.workspaces = 4;  // org_ index = ws index % 3: one organization spans two workspaces
    o.organizations = 3;
    o.users = 150;
    o.end_day = Stack::kToday;
    o.days = 120;
    o.duplicate_fraction = 0.03;
    o.malformed_fraction = 0.005;
    Dataset data = GenerateDataset(o);
    lines.insert(lines.end(), data.lines.begin(), data.lines.end());
    keys.insert(keys.end(), data.keys.begin(), data.keys.end());
    for (const std::string& l : lines) {
      if (model_->Add(l) == RefVerdict::kAccepted) ref_->Add(l);
    }
    ASSERT_TRUE(stack_->ProducePaced(lines, keys, 3000, Millis(120000)));
    ASSERT_TRUE(stack_->WaitForCatchUp(Millis(60000)));
  }
  static void TearDownTestSuite() {
    delete stack_;
    delete ref_;
    delete model_;
  }

  static Result<HttpResponse> Get(const std::string& query, const Headers& headers) {
    return stack_->http().Send("GET", std::string(kPath) + "?" + query, headers);
  }

  // Sends and checks status and exact JSON body.
  static void Expect(const std::string& query, const Headers& headers, int status,
                     const json& want) {
    SCOPED_TRACE("GET " + std::string(kPath) + "?" + query);
    Result<HttpResponse> r = Get(query, headers);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->status, status) << r->body;
    EXPECT_EQ(json::parse(r->body, nullptr, false), want) << r->body;
    EXPECT_NE(r->Header("content-type").find("application/json"), std::string::npos);
  }

  // A 200 equal to the reference. Adds the number of expected rows to rows_compared_.
  static void ExpectRef(const std::string& query, const Headers& headers, const std::string& ws,
                        const std::string& from, const std::string& to, size_t limit = 10,
                        const std::optional<std::set<std::string>>& users = std::nullopt) {
    SCOPED_TRACE("GET " + std::string(kPath) + "?" + query);
    Result<HttpResponse> r = Get(query, headers);
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_EQ(r->status, 200) << r->body;
    json want = ref_->Expected(ws, *RefParseDay(from), *RefParseDay(to), limit, users);
    rows_compared_ += want["data"].size();
    EXPECT_TRUE(SameLeaderboard(json::parse(r->body, nullptr, false), want));
  }

  static Stack* stack_;
  static LeaderboardReference* ref_;
  static ReferenceModel* model_;
  static inline size_t rows_compared_ = 0;
};

Stack* LeaderboardE2E::stack_ = nullptr;
LeaderboardReference* LeaderboardE2E::ref_ = nullptr;
ReferenceModel* LeaderboardE2E::model_ = nullptr;

const Headers kAdmin = {{"Authorization", "Bearer tok-admin"}};

TEST_F(LeaderboardE2E, HandBuiltDefaultRangeIsExactlyAsComputedByHand) {
  Expect(std::string("workspace_uuid=") + kWsHand, kAdmin, 200, json::parse(R"({"data": [
    {"rank": 1, "user": {"id": 42, "name": "Jane Smith",
                         "photo": "https://example.com/storage/photos/user-42.jpg"},
     "agent_count": 3, "agent_count_previous_period": 2, "growth_percentage": 50},
    {"rank": 1, "user": {"id": "u_bob", "name": "Bob", "photo": null},
     "agent_count": 3, "agent_count_previous_period": 0, "growth_percentage": null},
    {"rank": 3, "user": {"id": 7, "name": "Seven", "photo": "https://example.com/7.jpg"},
     "agent_count": 1, "agent_count_previous_period": 3, "growth_percentage": -66.67},
    {"rank": 4, "user": {"id": 8, "name": null, "photo": null},
     "agent_count": 0, "agent_count_previous_period": 1, "growth_percentage": -100}]})"));
  // And the reference agrees with the hand computation.
  ExpectRef(std::string("workspace_uuid=") + kWsHand, kAdmin, kWsHand, "2026-01-31", "2026-03-01");
}

TEST_F(LeaderboardE2E, HandBuiltRangesLimitAndUserFilter) {
  const std::string ws = std::string("workspace_uuid=") + kWsHand;
  // Explicit ranges (the previous period is the same length just before).
  ExpectRef(ws + "&date_from=2026-02-20&date_to=2026-02-26", kAdmin, kWsHand, "2026-02-20",
            "2026-02-26");
  ExpectRef(ws + "&date_from=2026-01-01&date_to=2026-01-31", kAdmin, kWsHand, "2026-01-01",
            "2026-01-31");
  ExpectRef(ws + "&date_from=2026-02-20&date_to=2026-02-20", kAdmin, kWsHand, "2026-02-20",
            "2026-02-20");
  ExpectRef(ws + "&date_from=2025-12-01&date_to=2026-03-31", kAdmin, kWsHand, "2025-12-01",
            "2026-03-31");
  // limit bounds the rows after ranking.
  ExpectRef(ws + "&limit=1", kAdmin, kWsHand, "2026-01-31", "2026-03-01", 1);
  ExpectRef(ws + "&limit=3", kAdmin, kWsHand, "2026-01-31", "2026-03-01", 3);
  // The user filter: comma list, repeated parameters, PHP array form; ranks among the filtered.
  const std::set<std::string> seven_eight = {"7", "8"};
  ExpectRef(ws + "&user_multiplai_ids=7,8", kAdmin, kWsHand, "2026-01-31", "2026-03-01", 10,
            seven_eight);
  ExpectRef(ws + "&user_multiplai_ids=7&user_multiplai_ids=8", kAdmin, kWsHand, "2026-01-31",
            "2026-03-01", 10, seven_eight);
  ExpectRef(ws + "&user_multiplai_ids%5B%5D=u_bob&user_multiplai_ids%5B%5D=9&user_multiplai_ids%5B%"
                 "5D=nobody",
            kAdmin, kWsHand, "2026-01-31", "2026-03-01", 10, std::set<std::string>{"u_bob"});
  Expect(ws + "&user_multiplai_ids=" + UrlEncode("7, 8"), kAdmin, 200, json::parse(R"({"data": [
    {"rank": 1, "user": {"id": 7, "name": "Seven", "photo": "https://example.com/7.jpg"},
     "agent_count": 1, "agent_count_previous_period": 3, "growth_percentage": -66.67},
    {"rank": 2, "user": {"id": 8, "name": null, "photo": null},
     "agent_count": 0, "agent_count_previous_period": 1, "growth_percentage": -100}]})"));
  Expect(ws + "&user_multiplai_ids=9,10", kAdmin, 200, json::parse(R"({"data": []})"));
}

TEST_F(LeaderboardE2E, OrganizationResolution) {
  // Unique: the same answer as by workspace_uuid.
  ExpectRef("organization_multiplai_id=org_hand", kAdmin, kWsHand, "2026-01-31", "2026-03-01");
  // workspace_uuid wins when both are given.
  ExpectRef(std::string("organization_multiplai_id=org_hand&workspace_uuid=") + kWsDup1, kAdmin,
            kWsDup1, "2026-01-31", "2026-03-01");
  // Unknown: 404 for an admin key.
  Expect("organization_multiplai_id=org_nowhere", kAdmin, 404, kNotFound);
  // Ambiguous: 422 naming organization_multiplai_id.
  const std::string m =
      "The organization multiplai id matches several workspaces; pass workspace_uuid.";
  const json ambiguous = {{"message", m}, {"errors", {{"organization_multiplai_id", {m}}}}};
  Expect("organization_multiplai_id=org_dup", kAdmin, 422, ambiguous);
}

TEST_F(LeaderboardE2E, AuthAndValidationStatusAndBody) {
  const std::string ws = std::string("workspace_uuid=") + kWsHand;
  // 401: no token, unknown Bearer, unknown api_key; before validation.
  Expect(ws, {}, 401, kUnauthenticated);
  Expect(ws, {{"Authorization", "Bearer nope"}}, 401, kUnauthenticated);
  Expect(ws, {{"api_key", "nope"}}, 401, kUnauthenticated);
  Expect("limit=0", {}, 401, kUnauthenticated);
  // 403: a key that is not a member, whether or not the workspace exists; org resolved to a
  // workspace the key does not hold; unknown org for a non-admin key.
  Expect(ws, {{"Authorization", "Bearer tok-member-dup"}}, 403, kForbidden);
  Expect(std::string("workspace_uuid=") + kUnknownWs, {{"Authorization", "Bearer tok-member-dup"}},
         403, kForbidden);
  Expect("organization_multiplai_id=org_hand", {{"api_key", "tok-member-dup"}}, 403, kForbidden);
  Expect("organization_multiplai_id=org_nowhere", {{"api_key", "tok-member-dup"}}, 403, kForbidden);
  // 404: admin on an unknown workspace.
  Expect(std::string("workspace_uuid=") + kUnknownWs, kAdmin, 404, kNotFound);
  // 200: member (api_key header and Bearer), owner, member through the organization.
  ExpectRef(ws, {{"api_key", "tok-member-hand"}}, kWsHand, "2026-01-31", "2026-03-01");
  ExpectRef(ws, {{"Authorization", "Bearer tok-member-hand"}}, kWsHand, "2026-01-31", "2026-03-01");
  ExpectRef(ws, {{"Authorization", "Bearer tok-owner-hand"}}, kWsHand, "2026-01-31", "2026-03-01");
  ExpectRef("organization_multiplai_id=org_hand", {{"api_key", "tok-member-hand"}}, kWsHand,
            "2026-01-31", "2026-03-01");
  // 422 in Laravel's shape.
  auto one = [](const std::string& field, const std::string& message) {
    return json{{"message", message}, {"errors", {{field, {message}}}}};
  };
  const Headers member = {{"api_key", "tok-member-hand"}};
  Expect("limit=5", member, 422,
         one("workspace_uuid",
             "The workspace uuid field is required when organization multiplai id is not "
             "present."));
  Expect(ws + "&date_from=2026-02-01", member, 422,
         one("date_to", "The date to field is required when date from is present."));
  Expect(ws + "&date_to=2026-02-01", member, 422,
         one("date_from", "The date from field is required when date to is present."));
  Expect(ws + "&date_from=2026-02-02&date_to=2026-02-01", member, 422,
         one("date_to", "The date to field must be a date after or equal to date from."));
  Expect(ws + "&date_from=2026-02-30&date_to=2026-03-01", member, 422,
         one("date_from", "The date from field must match the format Y-m-d."));
  Expect(ws + "&limit=101", member, 422,
         one("limit", "The limit field must be between 1 and 100."));
  Expect(ws + "&limit=abc", member, 422, one("limit", "The limit field must be an integer."));
}

TEST_F(LeaderboardE2E, GeneratedDataMatchesTheReference) {
  const size_t rows_before = rows_compared_;
  int workspaces = 0;
  for (const std::string& ws : ref_->workspaces()) {
    if (ws == kWsHand || ws == kWsDup1 || ws == kWsDup2) continue;
    ++workspaces;
    SCOPED_TRACE("workspace " + ws);
    const std::string q = "workspace_uuid=" + UrlEncode(ws);
    ExpectRef(q + "&limit=100", kAdmin, ws, "2026-01-31", "2026-03-01", 100);
    ExpectRef(q, kAdmin, ws, "2026-01-31", "2026-03-01", 10);
    ExpectRef(q + "&limit=100&date_from=2026-01-01&date_to=2026-01-31", kAdmin, ws, "2026-01-01",
              "2026-01-31", 100);
    ExpectRef(q + "&limit=100&date_from=2025-12-15&date_to=2026-02-14", kAdmin, ws, "2025-12-15",
              "2026-02-14", 100);
    ExpectRef(q + "&limit=7&date_from=2026-02-23&date_to=2026-02-23", kAdmin, ws, "2026-02-23",
              "2026-02-23", 7);
    // A filter of a few creators (every third), as a comma list and as repeated parameters.
    std::vector<std::string> creators = ref_->Creators(ws);
    std::set<std::string> some;
    std::string comma, repeated;
    for (size_t i = 0; i < creators.size(); i += 3) {
      some.insert(creators[i]);
      comma += (comma.empty() ? "" : ",") + creators[i];
      repeated += "&user_multiplai_ids=" + UrlEncode(creators[i]);
    }
    ASSERT_FALSE(some.empty());
    ExpectRef(q + "&limit=100&user_multiplai_ids=" + UrlEncode(comma), kAdmin, ws, "2026-01-31",
              "2026-03-01", 100, some);
    ExpectRef(q + "&limit=100&date_from=2025-11-01&date_to=2026-01-15" + repeated, kAdmin, ws,
              "2025-11-01", "2026-01-15", 100, some);
  }
  EXPECT_EQ(workspaces, 4);
  // Every organization: unique ones resolve to their workspace, shared ones are a 422.
  int unique = 0, shared = 0;
  for (const std::string& org : ref_->Organizations()) {
    std::vector<std::string> wss = ref_->WorkspacesOf(org);
    SCOPED_TRACE("organization " + org);
    const std::string q = "limit=100&organization_multiplai_id=" + UrlEncode(org);
    if (wss.size() == 1) {
      ++unique;
      ExpectRef(q, kAdmin, wss[0], "2026-01-31", "2026-03-01", 100);
    } else {
      ++shared;
      Result<HttpResponse> r = Get(q, kAdmin);
      ASSERT_TRUE(r);
      EXPECT_EQ(r->status, 422) << r->body;
    }
  }
  EXPECT_GE(unique, 2);
  EXPECT_GE(shared, 2);  // org_dup and the generated one spanning two workspaces
  // The comparison is not vacuous: hundreds of ranked rows, ties and nulls among them.
  EXPECT_GT(rows_compared_ - rows_before, 300u);
}

}  // namespace
}  // namespace tally::integration
