#include "http/leaderboard_handler.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/sha256.h"
#include "http/error_mapping.h"

namespace tally::http {
namespace {

using nlohmann::json;

std::string KeysToml() {
  auto entry = [](const std::string& name, const std::string& token, const std::string& rest) {
    return "[[keys]]\nname = \"" + name + "\"\nsha256 = \"" + Sha256Hex(token) + "\"\n" + rest +
           "\n";
  };
  return entry("owner-a", "tok-owner-a", R"(workspaces = { "ws-a" = "owner" })") +
         entry("member-a", "tok-member-a",
               R"(workspaces = { "ws-a" = "member", "ws-empty" = "member" })") +
         entry("member-b", "tok-member-b", R"(workspaces = { "ws-b" = "member" })") +
         entry("org-holder", "tok-org", R"(organizations = ["org_multi"])") +
         entry("admin", "tok-admin", "admin = true");
}

const json kUnauthenticated = {{"message", "Unauthenticated."}};
const json kForbidden = {{"message", "This action is unauthorized."}};
const json kNotFound = {{"error", "Workspace not found"}};

class LeaderboardHandlerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto keys = KeyStore::LoadString(KeysToml());
    ASSERT_TRUE(keys.has_value()) << keys.error().message;
    LeaderboardBackend backend;
    backend.run = [this](const query::LeaderboardRequest& r) -> Result<query::LeaderboardResult> {
      ++calls_;
      last_ = r;
      if (fail_) return std::unexpected(*fail_);
      return result_;
    };
    backend.resolve_organization = [](std::string_view org) -> Result<std::string> {
      if (org == "org_a") return std::string("ws-a");
      if (org == "org_b") return std::string("ws-b");
      if (org == "org_multi") {
        return Fail(ErrorCode::kInvalidArgument,
                    "The organization multiplai id matches several workspaces; pass "
                    "workspace_uuid.",
                    "organization_multiplai_id");
      }
      if (org == "org_broken") return Fail(ErrorCode::kUnavailable, "store down");
      return Fail(ErrorCode::kNotFound, "Workspace not found");
    };
    backend.workspace_known = [](std::string_view ws) { return ws == "ws-a" || ws == "ws-b"; };
    handler_ = std::make_unique<LeaderboardHandler>(
        std::make_shared<const KeyStore>(std::move(*keys)), backend);

    query::LeaderboardRow jane;
    jane.rank = 1;
    jane.user_id = "42";
    jane.name = "Jane Smith";
    jane.photo = "https://example.com/storage/photos/user-42.jpg";
    jane.agent_count = 15;
    jane.agent_count_previous_period = 10;
    jane.growth_percentage = 50;
    query::LeaderboardRow anon;
    anon.rank = 2;
    anon.user_id = "u-7";
    anon.agent_count = 3;
    result_.rows = {jane, anon};
  }

  Response Call(const std::string& token, StringPairs query,
                const std::string& header = "Authorization") {
    Request r;
    r.method = "GET";
    r.path = "/api/agents/leaderboard";
    r.query = std::move(query);
    if (!token.empty()) {
      r.headers.emplace_back(header, header == "Authorization" ? "Bearer " + token : token);
    }
    return handler_->Handle(r);
  }

  void Expect(const Response& r, int status, const json& body) {
    EXPECT_EQ(r.status, status) << r.body;
    EXPECT_EQ(json::parse(r.body, nullptr, false), body) << r.body;
    EXPECT_EQ(r.content_type, "application/json");
  }

  std::unique_ptr<LeaderboardHandler> handler_;
  query::LeaderboardResult result_;
  std::optional<Error> fail_;
  int calls_ = 0;
  query::LeaderboardRequest last_;
};

TEST_F(LeaderboardHandlerTest, SeedShapedResponse) {
  Response r = Call("tok-member-a", {{"workspace_uuid", "ws-a"}, {"limit", "10"}});
  Expect(r, 200, json::parse(R"({"data": [
    {"rank": 1, "user": {"id": 42, "name": "Jane Smith",
                         "photo": "https://example.com/storage/photos/user-42.jpg"},
     "agent_count": 15, "agent_count_previous_period": 10, "growth_percentage": 50},
    {"rank": 2, "user": {"id": "u-7", "name": null, "photo": null},
     "agent_count": 3, "agent_count_previous_period": 0, "growth_percentage": null}]})"));
  EXPECT_NE(r.body.find(R"("growth_percentage":50})"), std::string::npos) << r.body;
  EXPECT_EQ(calls_, 1);
  EXPECT_EQ(last_.workspace_id, "ws-a");
  EXPECT_EQ(last_.limit, 10);
}

TEST_F(LeaderboardHandlerTest, UserIdRendering) {
  auto id_of = [](const std::string& stored) {
    query::LeaderboardResult res;
    res.rows.resize(1);
    res.rows[0].user_id = stored;
    return json::parse(RenderLeaderboard(res))["data"][0]["user"]["id"];
  };
  EXPECT_EQ(id_of("42"), json(42));
  EXPECT_EQ(id_of("0"), json(0));
  EXPECT_EQ(id_of("-7"), json(-7));
  EXPECT_EQ(id_of("9223372036854775807"), json(INT64_MAX));
  EXPECT_EQ(id_of("9223372036854775808"), json("9223372036854775808"));  // beyond int64
  EXPECT_EQ(id_of("007"), json("007"));
  EXPECT_EQ(id_of("-0"), json("-0"));
  EXPECT_EQ(id_of("+1"), json("+1"));
  EXPECT_EQ(id_of("1.0"), json("1.0"));
  EXPECT_EQ(id_of(""), json(""));
  EXPECT_EQ(id_of("u42"), json("u42"));
  EXPECT_EQ(id_of("4 2"), json("4 2"));
}

TEST_F(LeaderboardHandlerTest, FractionalGrowthAndEmptyList) {
  result_.rows.resize(1);
  result_.rows[0].growth_percentage = -66.67;
  Response r = Call("tok-admin", {{"workspace_uuid", "ws-a"}});
  EXPECT_NE(r.body.find(R"("growth_percentage":-66.67})"), std::string::npos) << r.body;
  result_.rows.clear();
  Expect(Call("tok-admin", {{"workspace_uuid", "ws-a"}}), 200, json::parse(R"({"data":[]})"));
}

TEST_F(LeaderboardHandlerTest, Unauthenticated) {
  for (const std::string& token : {std::string(), std::string("nope")}) {
    Response r = Call(token, {});  // 401 before 422
    Expect(r, 401, kUnauthenticated);
    EXPECT_EQ(r.headers.size(), 1u);
  }
  EXPECT_EQ(calls_, 0);
}

TEST_F(LeaderboardHandlerTest, ApiKeyHeader) {
  EXPECT_EQ(Call("tok-member-a", {{"workspace_uuid", "ws-a"}}, "api_key").status, 200);
}

TEST_F(LeaderboardHandlerTest, ValidationBeforeAuthorization) {
  Response r = Call("tok-member-b", {{"workspace_uuid", "ws-a"}, {"limit", "0"}});
  Expect(r, 422,
         {{"message", "The limit field must be between 1 and 100."},
          {"errors", {{"limit", {"The limit field must be between 1 and 100."}}}}});
  const std::string m =
      "The workspace uuid field is required when organization multiplai id is not present.";
  Expect(Call("tok-admin", {}), 422, {{"message", m}, {"errors", {{"workspace_uuid", {m}}}}});
  EXPECT_EQ(calls_, 0);
}

TEST_F(LeaderboardHandlerTest, MembershipRules) {
  // Member and owner pass (the leaderboard needs membership only), admin passes everywhere.
  EXPECT_EQ(Call("tok-member-a", {{"workspace_uuid", "ws-a"}}).status, 200);
  EXPECT_EQ(Call("tok-owner-a", {{"workspace_uuid", "ws-a"}}).status, 200);
  EXPECT_EQ(Call("tok-admin", {{"workspace_uuid", "ws-b"}}).status, 200);
  // Not a member: 403, the same whether or not the workspace exists.
  Response existing = Call("tok-member-b", {{"workspace_uuid", "ws-a"}});
  Response missing = Call("tok-member-b", {{"workspace_uuid", "ws-nowhere"}});
  Expect(existing, 403, kForbidden);
  EXPECT_EQ(existing.body, missing.body);
  EXPECT_EQ(missing.status, 403);
  // Admin on an unknown workspace: 404.
  Expect(Call("tok-admin", {{"workspace_uuid", "ws-nowhere"}}), 404, kNotFound);
  // Granted in the keys file but without events yet: served.
  EXPECT_EQ(Call("tok-member-a", {{"workspace_uuid", "ws-empty"}}).status, 200);
  EXPECT_EQ(calls_, 4);
}

TEST_F(LeaderboardHandlerTest, OrganizationResolution) {
  EXPECT_EQ(Call("tok-member-a", {{"organization_multiplai_id", "org_a"}}).status, 200);
  EXPECT_EQ(last_.workspace_id, "ws-a");
  // workspace_uuid wins over the organization.
  EXPECT_EQ(Call("tok-admin", {{"organization_multiplai_id", "org_a"}, {"workspace_uuid", "ws-b"}})
                .status,
            200);
  EXPECT_EQ(last_.workspace_id, "ws-b");
  // Resolved to a workspace the key does not hold: 403.
  Expect(Call("tok-member-a", {{"organization_multiplai_id", "org_b"}}), 403, kForbidden);
  // Unknown organization: 404 for admin, 403 for others.
  Expect(Call("tok-admin", {{"organization_multiplai_id", "org_x"}}), 404, kNotFound);
  Expect(Call("tok-member-a", {{"organization_multiplai_id", "org_x"}}), 403, kForbidden);
  // Ambiguous: 422 for admin and for a key holding the organization, 403 for others.
  const std::string m =
      "The organization multiplai id matches several workspaces; pass workspace_uuid.";
  const json ambiguous = {{"message", m}, {"errors", {{"organization_multiplai_id", {m}}}}};
  Expect(Call("tok-admin", {{"organization_multiplai_id", "org_multi"}}), 422, ambiguous);
  Expect(Call("tok-org", {{"organization_multiplai_id", "org_multi"}}), 422, ambiguous);
  Expect(Call("tok-member-a", {{"organization_multiplai_id", "org_multi"}}), 403, kForbidden);
  // A backend failure is not disguised.
  EXPECT_EQ(Call("tok-admin", {{"organization_multiplai_id", "org_broken"}}).status, 503);
  EXPECT_EQ(calls_, 2);
}

TEST_F(LeaderboardHandlerTest, PassesParsedRequestAndMapsBackendErrors) {
  Response r = Call("tok-admin", {{"workspace_uuid", "ws-a"},
                                  {"user_multiplai_ids", "1,2"},
                                  {"user_multiplai_ids[]", "3"},
                                  {"limit", "3"},
                                  {"date_from", "2026-02-01"},
                                  {"date_to", "2026-02-28"}});
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(last_.user_ids, (std::vector<std::string>{"1", "2", "3"}));
  EXPECT_EQ(last_.limit, 3);
  EXPECT_EQ(last_.from, std::optional<DayNumber>(*ParseDay("2026-02-01")));
  EXPECT_EQ(last_.to, std::optional<DayNumber>(*ParseDay("2026-02-28")));

  fail_ = Error{ErrorCode::kInvalidArgument, "The limit field must be between 1 and 100.", "limit"};
  EXPECT_EQ(Call("tok-admin", {{"workspace_uuid", "ws-a"}}).status, 422);
  fail_ = Error{ErrorCode::kInternal, "store read failed", ""};
  Expect(Call("tok-admin", {{"workspace_uuid", "ws-a"}}), 500,
         {{"message", "Internal server error."}});
}

}  // namespace
}  // namespace tally::http
