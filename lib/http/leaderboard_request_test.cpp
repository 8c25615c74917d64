#include "http/leaderboard_request.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace tally::http {
namespace {

query::LeaderboardRequest OkRequest(const StringPairs& q) {
  auto r = ParseLeaderboardRequest(q);
  EXPECT_TRUE(r.has_value()) << (r ? ""
                                   : r.error().front().field + ": " + r.error().front().message);
  return r ? r->request : query::LeaderboardRequest{};
}

// Exactly one error, on `field`, with `message`; and its 422 in Laravel's shape.
void ExpectOneError(const StringPairs& q, const std::string& field, const std::string& message) {
  auto r = ParseLeaderboardRequest(q);
  ASSERT_FALSE(r.has_value()) << "expected a validation error on " << field;
  ASSERT_EQ(r.error().size(), 1u) << r.error()[0].field << ": " << r.error()[0].message;
  EXPECT_EQ(r.error()[0].field, field);
  EXPECT_EQ(r.error()[0].message, message);
  Response res = ValidationErrorResponse(r.error());
  EXPECT_EQ(res.status, 422);
  nlohmann::json want = {{"message", message}, {"errors", {{field, {message}}}}};
  EXPECT_EQ(nlohmann::json::parse(res.body), want);
}

StringPairs Ws(StringPairs extra = {}) {
  StringPairs q = {{"workspace_uuid", "ws-1"}};
  q.insert(q.end(), extra.begin(), extra.end());
  return q;
}

TEST(LeaderboardRequest, Defaults) {
  auto r = ParseLeaderboardRequest(Ws());
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->workspace_uuid, "ws-1");
  EXPECT_EQ(r->request.workspace_id, "ws-1");
  EXPECT_EQ(r->organization_multiplai_id, "");
  EXPECT_EQ(r->request.limit, 10);
  EXPECT_FALSE(r->request.from.has_value());
  EXPECT_FALSE(r->request.to.has_value());
  EXPECT_TRUE(r->request.user_ids.empty());
}

TEST(LeaderboardRequest, SeedExampleWithEmptyParameters) {
  // Dashboards send empty organization/user/date parameters: they count as absent.
  auto r = ParseLeaderboardRequest({{"workspace_uuid", "8360bf61-4604-4f22-99dc-2afa910fd8c7"},
                                    {"organization_multiplai_id", ""},
                                    {"user_multiplai_ids", ""},
                                    {"limit", "10"},
                                    {"date_from", ""},
                                    {"date_to", ""}});
  ASSERT_TRUE(r.has_value()) << r.error()[0].message;
  EXPECT_EQ(r->request.workspace_id, "8360bf61-4604-4f22-99dc-2afa910fd8c7");
  EXPECT_TRUE(r->request.user_ids.empty());
  EXPECT_FALSE(r->request.from.has_value());
}

TEST(LeaderboardRequest, OrganizationAloneAndWorkspaceWins) {
  auto r = ParseLeaderboardRequest({{"organization_multiplai_id", "org_7"}});
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->workspace_uuid, "");
  EXPECT_EQ(r->organization_multiplai_id, "org_7");
  EXPECT_EQ(r->request.workspace_id, "");
  r = ParseLeaderboardRequest({{"organization_multiplai_id", "org_7"}, {"workspace_uuid", "ws"}});
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->workspace_uuid, "ws");
  EXPECT_EQ(r->request.workspace_id, "ws");
}

TEST(LeaderboardRequest, NeitherWorkspaceNorOrganization) {
  const std::string m =
      "The workspace uuid field is required when organization multiplai id is not present.";
  ExpectOneError({}, "workspace_uuid", m);
  ExpectOneError({{"workspace_uuid", ""}, {"organization_multiplai_id", ""}}, "workspace_uuid", m);
  ExpectOneError({{"limit", "5"}}, "workspace_uuid", m);
}

TEST(LeaderboardRequest, LongStrings) {
  ExpectOneError({{"workspace_uuid", std::string(256, 'w')}}, "workspace_uuid",
                 "The workspace uuid field must not be greater than 255 characters.");
  ExpectOneError({{"organization_multiplai_id", std::string(256, 'o')}},
                 "organization_multiplai_id",
                 "The organization multiplai id field must not be greater than 255 characters.");
  EXPECT_EQ(OkRequest({{"workspace_uuid", std::string(255, 'w')}}).workspace_id.size(), 255u);
}

TEST(LeaderboardRequest, UserIdsCommaRepeatedAndArrayForms) {
  using V = std::vector<std::string>;
  EXPECT_EQ(OkRequest(Ws({{"user_multiplai_ids", "1,2"}})).user_ids, (V{"1", "2"}));
  EXPECT_EQ(OkRequest(Ws({{"user_multiplai_ids", "1"}, {"user_multiplai_ids", "2"}})).user_ids,
            (V{"1", "2"}));
  EXPECT_EQ(OkRequest(Ws({{"user_multiplai_ids[]", "1"}, {"user_multiplai_ids[]", "2"}})).user_ids,
            (V{"1", "2"}));
  EXPECT_EQ(
      OkRequest(Ws({{"user_multiplai_ids[0]", "7"}, {"user_multiplai_ids[1]", "u 8"}})).user_ids,
      (V{"7", "u 8"}));
  // Mixed forms, blanks, empty items and duplicates.
  EXPECT_EQ(OkRequest(Ws({{"user_multiplai_ids", " 3 , ,4,3,"}, {"user_multiplai_ids[]", "5,4"}}))
                .user_ids,
            (V{"3", "4", "5"}));
  EXPECT_TRUE(OkRequest(Ws({{"user_multiplai_ids", ","}})).user_ids.empty());
  // Names that only look alike are ignored.
  EXPECT_TRUE(
      OkRequest(Ws({{"user_multiplai_idsx", "1"}, {"user_multiplai_ids[", "2"}})).user_ids.empty());
}

TEST(LeaderboardRequest, UserIdsLimits) {
  ExpectOneError(Ws({{"user_multiplai_ids", "1," + std::string(256, 'x')}}), "user_multiplai_ids",
                 "Each user multiplai id must not be greater than 255 characters.");
  std::string many;
  for (int i = 0; i <= 1000; ++i) many += std::to_string(i) + ",";
  ExpectOneError(Ws({{"user_multiplai_ids", many}}), "user_multiplai_ids",
                 "The user multiplai ids field must not have more than 1000 items.");
  many.clear();
  for (int i = 0; i < 1000; ++i) many += std::to_string(i) + ",";
  EXPECT_EQ(OkRequest(Ws({{"user_multiplai_ids", many}})).user_ids.size(), 1000u);
}

TEST(LeaderboardRequest, Limit) {
  EXPECT_EQ(OkRequest(Ws({{"limit", "1"}})).limit, 1);
  EXPECT_EQ(OkRequest(Ws({{"limit", "100"}})).limit, 100);
  EXPECT_EQ(OkRequest(Ws({{"limit", "+7"}})).limit, 7);
  EXPECT_EQ(OkRequest(Ws({{"limit", "5"}, {"limit", "6"}})).limit, 6);  // last one wins
  for (const char* bad : {"0", "101", "-1", "99999999999999999999"}) {
    ExpectOneError(Ws({{"limit", bad}}), "limit", "The limit field must be between 1 and 100.");
  }
  for (const char* bad : {"ten", "1.5", "1e2", " 5", "0x10"}) {
    ExpectOneError(Ws({{"limit", bad}}), "limit", "The limit field must be an integer.");
  }
}

TEST(LeaderboardRequest, Dates) {
  auto r = OkRequest(Ws({{"date_from", "2026-02-01"}, {"date_to", "2026-02-28"}}));
  EXPECT_EQ(r.from, std::optional<DayNumber>(*ParseDay("2026-02-01")));
  EXPECT_EQ(r.to, std::optional<DayNumber>(*ParseDay("2026-02-28")));
  r = OkRequest(Ws({{"date_from", "2026-02-01"}, {"date_to", "2026-02-01"}}));  // one day
  EXPECT_EQ(r.from, r.to);

  for (const char* bad : {"2026-02-30", "2026-2-01", "01/02/2026", "2026-02-01T00:00:00Z", "x"}) {
    ExpectOneError(Ws({{"date_from", bad}, {"date_to", "2026-03-01"}}), "date_from",
                   "The date from field must match the format Y-m-d.");
    ExpectOneError(Ws({{"date_from", "2026-01-01"}, {"date_to", bad}}), "date_to",
                   "The date to field must match the format Y-m-d.");
  }
  ExpectOneError(Ws({{"date_from", "2026-02-01"}}), "date_to",
                 "The date to field is required when date from is present.");
  ExpectOneError(Ws({{"date_to", "2026-02-01"}}), "date_from",
                 "The date from field is required when date to is present.");
  ExpectOneError(Ws({{"date_from", "2026-02-02"}, {"date_to", "2026-02-01"}}), "date_to",
                 "The date to field must be a date after or equal to date from.");
  ExpectOneError(Ws({{"date_from", "2016-01-01"}, {"date_to", "2026-02-01"}}), "date_from",
                 "The date range must not be longer than 3660 days.");
}

TEST(LeaderboardRequest, EveryErrorIsReportedInOrder) {
  auto r = ParseLeaderboardRequest({{"limit", "0"},
                                    {"date_from", "bad"},
                                    {"date_to", "2026-01-01"},
                                    {"user_multiplai_ids", std::string(300, 'u')}});
  ASSERT_FALSE(r.has_value());
  std::vector<std::string> fields;
  for (const FieldError& e : r.error()) fields.push_back(e.field);
  EXPECT_EQ(fields, (std::vector<std::string>{"workspace_uuid", "user_multiplai_ids", "limit",
                                              "date_from"}));
  Response res = ValidationErrorResponse(r.error());
  EXPECT_EQ(res.status, 422);
  auto body = nlohmann::json::parse(res.body);
  EXPECT_EQ(body["message"],
            "The workspace uuid field is required when organization multiplai id is not present. "
            "(and 3 more errors)");
  EXPECT_EQ(body["errors"].size(), 4u);
}

}  // namespace
}  // namespace tally::http
