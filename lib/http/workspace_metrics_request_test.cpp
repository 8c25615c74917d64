#include "http/workspace_metrics_request.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>

#include "http/error_mapping.h"

namespace tally::http {
namespace {

using query::Aggregation;
using query::GroupBy;
using query::Metric;
using query::OrderBy;
using query::Period;

constexpr const char* kBase =
    R"({"workspace_uuid":"ws-1","entity":"agents","metric":"executions","aggregation":"count")";

// kBase plus `extra` members (a string starting with ',' or empty), closed.
std::string Body(const std::string& extra = "") { return std::string(kBase) + extra + "}"; }

query::WorkspaceMetricsRequest Ok(std::string_view body, const StringPairs& query = {}) {
  auto r = ParseWorkspaceMetricsRequest(body, query);
  EXPECT_TRUE(r.has_value()) << (r ? ""
                                   : r.error().front().field + ": " + r.error().front().message);
  return r ? *r : query::WorkspaceMetricsRequest{};
}

FieldErrors Errors(std::string_view body, const StringPairs& query = {}) {
  auto r = ParseWorkspaceMetricsRequest(body, query);
  EXPECT_FALSE(r.has_value()) << "expected a validation error for " << body;
  return r ? FieldErrors{} : r.error();
}

// Exactly one error, on `field`, with `message`.
void ExpectOneError(std::string_view body, const std::string& field, const std::string& message,
                    const StringPairs& query = {}) {
  FieldErrors e = Errors(body, query);
  ASSERT_EQ(e.size(), 1u) << body;
  EXPECT_EQ(e[0].field, field) << body;
  EXPECT_EQ(e[0].message, message) << body;
  // And the HTTP side: 422 with Laravel's shape.
  Response res = ValidationErrorResponse(e);
  EXPECT_EQ(res.status, 422);
  nlohmann::json want = {{"message", message}, {"errors", {{field, {message}}}}};
  EXPECT_EQ(nlohmann::json::parse(res.body), want);
}

TEST(WorkspaceMetricsRequest, MinimalBodyGetsDefaults) {
  auto r = Ok(Body());
  EXPECT_EQ(r.workspace_id, "ws-1");
  EXPECT_EQ(r.entity, event::EntityKind::kAgent);
  EXPECT_EQ(r.metric, Metric::kExecutions);
  EXPECT_EQ(r.aggregation, Aggregation::kCount);
  EXPECT_EQ(r.group_by, GroupBy::kNone);
  EXPECT_FALSE(r.granularity.has_value());
  EXPECT_EQ(r.period, Period::k30d);
  EXPECT_FALSE(r.user_id.has_value());
  EXPECT_FALSE(r.order_by.has_value());
  EXPECT_FALSE(r.descending.has_value());
  EXPECT_EQ(r.limit, 10);
}

TEST(WorkspaceMetricsRequest, SeedExampleRequest) {
  auto r = Ok(R"({
    "workspace_uuid": "8360bf61-4604-4f22-99dc-2afa910fd8c7",
    "entity": "agents", "metric": "executions", "aggregation": "count",
    "group_by": "user", "granularity": "daily",
    "filters": {"period": "30d", "user_id": 0},
    "order_by": "value", "order_dir": "desc", "limit": 10})");
  EXPECT_EQ(r.workspace_id, "8360bf61-4604-4f22-99dc-2afa910fd8c7");
  EXPECT_EQ(r.group_by, GroupBy::kUser);
  ASSERT_TRUE(r.granularity.has_value());
  EXPECT_EQ(*r.granularity, Granularity::kDay);  // echoed even with group_by=user
  EXPECT_EQ(r.period, Period::k30d);
  EXPECT_EQ(r.user_id, std::optional<std::string>("0"));
  EXPECT_EQ(r.order_by, std::optional<OrderBy>(OrderBy::kValue));
  EXPECT_EQ(r.descending, std::optional<bool>(true));
  EXPECT_EQ(r.limit, 10);
}

TEST(WorkspaceMetricsRequest, AllEnumValuesAreAccepted) {
  EXPECT_EQ(
      Ok(R"({"workspace_uuid":"w","entity":"workflows","metric":"created","aggregation":"sum"})")
          .entity,
      event::EntityKind::kWorkflow);
  const std::pair<const char*, Metric> metrics[] = {{"executions", Metric::kExecutions},
                                                    {"created", Metric::kCreated},
                                                    {"copies", Metric::kCopies},
                                                    {"shares", Metric::kShares},
                                                    {"avg_duration", Metric::kAvgDuration}};
  for (auto [name, m] : metrics) {
    auto r =
        Ok(std::string(
               R"({"workspace_uuid":"w","entity":"workflows","aggregation":"avg","metric":")") +
           name + "\"}");
    EXPECT_EQ(r.metric, m) << name;
    EXPECT_EQ(r.aggregation, Aggregation::kAvg);
  }
  const std::pair<const char*, Granularity> grans[] = {{"daily", Granularity::kDay},
                                                       {"weekly", Granularity::kWeek},
                                                       {"monthly", Granularity::kMonth}};
  for (auto [name, g] : grans) {
    auto r = Ok(Body(std::string(R"(,"group_by":"date","granularity":")") + name + "\""));
    EXPECT_EQ(r.group_by, GroupBy::kDate);
    EXPECT_EQ(r.granularity, std::optional<Granularity>(g)) << name;
  }
  const std::pair<const char*, Period> periods[] = {
      {"7d", Period::k7d}, {"30d", Period::k30d}, {"90d", Period::k90d}, {"all", Period::kAll}};
  for (auto [name, p] : periods) {
    EXPECT_EQ(Ok(Body(std::string(R"(,"filters":{"period":")") + name + "\"}")).period, p) << name;
  }
  EXPECT_EQ(Ok(Body(R"(,"order_dir":"asc")")).descending, std::optional<bool>(false));
  EXPECT_EQ(Ok(Body(R"(,"group_by":"user","order_by":"name")")).order_by,
            std::optional<OrderBy>(OrderBy::kName));
  EXPECT_EQ(Ok(Body(R"(,"group_by":"date","granularity":"daily","order_by":"date")")).order_by,
            std::optional<OrderBy>(OrderBy::kDate));
  EXPECT_EQ(Ok(Body(R"(,"order_by":"value")")).order_by, std::optional<OrderBy>(OrderBy::kValue));
}

TEST(WorkspaceMetricsRequest, MissingEverythingListsRequiredFieldsInOrder) {
  FieldErrors e = Errors("");
  ASSERT_EQ(e.size(), 4u);
  EXPECT_EQ(e[0].field, "workspace_uuid");
  EXPECT_EQ(e[0].message, "The workspace uuid field is required.");
  EXPECT_EQ(e[1].field, "entity");
  EXPECT_EQ(e[1].message, "The entity field is required.");
  EXPECT_EQ(e[2].field, "metric");
  EXPECT_EQ(e[2].message, "The metric field is required.");
  EXPECT_EQ(e[3].field, "aggregation");
  EXPECT_EQ(e[3].message, "The aggregation field is required.");
  Response res = ValidationErrorResponse(e);
  EXPECT_EQ(res.status, 422);
  nlohmann::json body = nlohmann::json::parse(res.body);
  EXPECT_EQ(body["message"], "The workspace uuid field is required. (and 3 more errors)");
  EXPECT_EQ(body["errors"].size(), 4u);
  EXPECT_EQ(body["errors"]["aggregation"],
            nlohmann::json::array({"The aggregation field is required."}));
}

TEST(WorkspaceMetricsRequest, SeedEntityRequiredExample) {
  // The contract's 422 example, byte for byte in meaning.
  FieldErrors e = Errors(R"({"workspace_uuid":"w","metric":"executions","aggregation":"count"})");
  Response res = ValidationErrorResponse(e);
  EXPECT_EQ(res.status, 422);
  EXPECT_EQ(nlohmann::json::parse(res.body), nlohmann::json::parse(R"({
    "message": "The entity field is required.",
    "errors": {"entity": ["The entity field is required."]}})"));
}

TEST(WorkspaceMetricsRequest, TwoErrorsSaySingularMoreError) {
  FieldErrors e = Errors(R"({"workspace_uuid":"w","metric":"executions"})");
  ASSERT_EQ(e.size(), 2u);
  EXPECT_EQ(ValidationSummary(e), "The entity field is required. (and 1 more error)");
}

TEST(WorkspaceMetricsRequest, WorkspaceUuidRules) {
  ExpectOneError(R"({"entity":"agents","metric":"executions","aggregation":"count"})",
                 "workspace_uuid", "The workspace uuid field is required.");
  ExpectOneError(
      R"({"workspace_uuid":"","entity":"agents","metric":"executions","aggregation":"count"})",
      "workspace_uuid", "The workspace uuid field is required.");
  ExpectOneError(
      R"({"workspace_uuid":null,"entity":"agents","metric":"executions","aggregation":"count"})",
      "workspace_uuid", "The workspace uuid field is required.");
  ExpectOneError(
      R"({"workspace_uuid":42,"entity":"agents","metric":"executions","aggregation":"count"})",
      "workspace_uuid", "The workspace uuid field must be a string.");
  ExpectOneError(
      R"({"workspace_uuid":["a"],"entity":"agents","metric":"executions","aggregation":"count"})",
      "workspace_uuid", "The workspace uuid field must be a string.");
  std::string long_ws(256, 'a');
  ExpectOneError(R"({"workspace_uuid":")" + long_ws +
                     R"(","entity":"agents","metric":"executions","aggregation":"count"})",
                 "workspace_uuid",
                 "The workspace uuid field must not be greater than 255 characters.");
  EXPECT_EQ(Ok(R"({"workspace_uuid":")" + std::string(255, 'a') +
               R"(","entity":"agents","metric":"executions","aggregation":"count"})")
                .workspace_id.size(),
            255u);
}

TEST(WorkspaceMetricsRequest, EntityRules) {
  ExpectOneError(
      R"({"workspace_uuid":"w","entity":"threads","metric":"executions","aggregation":"count"})",
      "entity", "The selected entity is invalid.");
  ExpectOneError(
      R"({"workspace_uuid":"w","entity":"Agents","metric":"executions","aggregation":"count"})",
      "entity", "The selected entity is invalid.");
  ExpectOneError(R"({"workspace_uuid":"w","entity":1,"metric":"executions","aggregation":"count"})",
                 "entity", "The selected entity is invalid.");
}

TEST(WorkspaceMetricsRequest, MetricRules) {
  ExpectOneError(R"({"workspace_uuid":"w","entity":"agents","aggregation":"count"})", "metric",
                 "The metric field is required.");
  ExpectOneError(
      R"({"workspace_uuid":"w","entity":"agents","metric":"tokens","aggregation":"count"})",
      "metric", "The selected metric is invalid.");
  ExpectOneError(
      R"({"workspace_uuid":"w","entity":"agents","metric":"avg_duration","aggregation":"avg"})",
      "metric", "The avg_duration metric is only available for workflows.");
  // An invalid entity does not add an avg_duration error on top.
  FieldErrors e =
      Errors(R"({"workspace_uuid":"w","entity":"x","metric":"avg_duration","aggregation":"avg"})");
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].field, "entity");
}

TEST(WorkspaceMetricsRequest, AggregationRules) {
  ExpectOneError(R"({"workspace_uuid":"w","entity":"agents","metric":"executions"})", "aggregation",
                 "The aggregation field is required.");
  ExpectOneError(Body().replace(Body().find("count"), 5, "max"), "aggregation",
                 "The selected aggregation is invalid.");
}

TEST(WorkspaceMetricsRequest, GroupByRules) {
  ExpectOneError(Body(R"(,"group_by":"agent")"), "group_by", "The selected group by is invalid.");
  EXPECT_EQ(Ok(Body(R"(,"group_by":null)")).group_by, GroupBy::kNone);
  EXPECT_EQ(Ok(Body(R"(,"group_by":"")")).group_by, GroupBy::kNone);
  ExpectOneError(
      R"({"workspace_uuid":"w","entity":"workflows","metric":"avg_duration","aggregation":"avg","group_by":"user"})",
      "group_by", "The avg_duration metric does not support group_by.");
  ExpectOneError(
      R"({"workspace_uuid":"w","entity":"workflows","metric":"avg_duration","aggregation":"avg","group_by":"date","granularity":"daily"})",
      "group_by", "The avg_duration metric does not support group_by.");
}

TEST(WorkspaceMetricsRequest, GranularityRules) {
  ExpectOneError(Body(R"(,"group_by":"date")"), "granularity",
                 "The granularity field is required when group by is date.");
  ExpectOneError(Body(R"(,"group_by":"date","granularity":null)"), "granularity",
                 "The granularity field is required when group by is date.");
  ExpectOneError(Body(R"(,"group_by":"date","granularity":"hourly")"), "granularity",
                 "The selected granularity is invalid.");
  ExpectOneError(Body(R"(,"granularity":"yearly")"), "granularity",
                 "The selected granularity is invalid.");
  // Not required without group_by=date, but echoed when given.
  EXPECT_EQ(Ok(Body(R"(,"group_by":"user")")).granularity, std::nullopt);
  EXPECT_EQ(Ok(Body(R"(,"granularity":"weekly")")).granularity,
            std::optional<Granularity>(Granularity::kWeek));
}

TEST(WorkspaceMetricsRequest, FiltersRules) {
  ExpectOneError(Body(R"(,"filters":"7d")"), "filters", "The filters field must be an array.");
  ExpectOneError(Body(R"(,"filters":{"period":"1d"})"), "filters.period",
                 "The selected filters.period is invalid.");
  ExpectOneError(Body(R"(,"filters":{"period":7})"), "filters.period",
                 "The selected filters.period is invalid.");
  EXPECT_EQ(Ok(Body(R"(,"filters":{"period":null})")).period, Period::k30d);
  EXPECT_EQ(Ok(Body(R"(,"filters":null)")).period, Period::k30d);
  EXPECT_EQ(Ok(Body(R"(,"filters":{"user_id":123})")).user_id, std::optional<std::string>("123"));
  EXPECT_EQ(Ok(Body(R"(,"filters":{"user_id":-5})")).user_id, std::optional<std::string>("-5"));
  EXPECT_EQ(Ok(Body(R"(,"filters":{"user_id":"u-7"})")).user_id, std::optional<std::string>("u-7"));
  EXPECT_EQ(Ok(Body(R"(,"filters":{"user_id":18446744073709551615})")).user_id,
            std::optional<std::string>("18446744073709551615"));
  EXPECT_EQ(Ok(Body(R"(,"filters":{"user_id":""})")).user_id, std::nullopt);
  const std::string kUserMsg = "The filters.user id field must be a string or an integer.";
  ExpectOneError(Body(R"(,"filters":{"user_id":true})"), "filters.user_id", kUserMsg);
  ExpectOneError(Body(R"(,"filters":{"user_id":1.5})"), "filters.user_id", kUserMsg);
  ExpectOneError(Body(R"(,"filters":{"user_id":{"id":1}})"), "filters.user_id", kUserMsg);
  ExpectOneError(Body(R"(,"filters":{"user_id":")" + std::string(256, 'u') + "\"}"),
                 "filters.user_id",
                 "The filters.user id field must not be greater than 255 characters.");
  // Top-level aliases; filters wins.
  EXPECT_EQ(Ok(Body(R"(,"period":"7d")")).period, Period::k7d);
  EXPECT_EQ(Ok(Body(R"(,"period":"7d","filters":{"period":"90d"})")).period, Period::k90d);
  EXPECT_EQ(Ok(Body(R"(,"user_id":"a","filters":{"user_id":"b"})")).user_id,
            std::optional<std::string>("b"));
}

TEST(WorkspaceMetricsRequest, OrderRules) {
  ExpectOneError(Body(R"(,"order_by":"total")"), "order_by", "The selected order by is invalid.");
  ExpectOneError(Body(R"(,"order_by":"name")"), "order_by",
                 "Ordering by name is only available when group by is user.");
  ExpectOneError(Body(R"(,"group_by":"date","granularity":"daily","order_by":"name")"), "order_by",
                 "Ordering by name is only available when group by is user.");
  ExpectOneError(Body(R"(,"group_by":"user","order_by":"date")"), "order_by",
                 "Ordering by date is only available when group by is date.");
  ExpectOneError(Body(R"(,"order_dir":"up")"), "order_dir", "The selected order dir is invalid.");
  ExpectOneError(Body(R"(,"order_dir":"DESC")"), "order_dir", "The selected order dir is invalid.");
}

TEST(WorkspaceMetricsRequest, LimitRules) {
  const std::string kRange = "The limit field must be between 1 and 100.";
  const std::string kInt = "The limit field must be an integer.";
  ExpectOneError(Body(R"(,"limit":0)"), "limit", kRange);
  ExpectOneError(Body(R"(,"limit":101)"), "limit", kRange);
  ExpectOneError(Body(R"(,"limit":-1)"), "limit", kRange);
  ExpectOneError(Body(R"(,"limit":18446744073709551615)"), "limit", kRange);
  // Beyond 64 bits simdjson 3.0 refuses the document; said so instead of "not an object".
  ExpectOneError(
      Body(R"(,"limit":99999999999999999999)"), "body",
      "The request body contains a number that is malformed or does not fit in 64 bits.");
  ExpectOneError(Body(R"(,"limit":1.5)"), "limit", kInt);
  ExpectOneError(Body(R"(,"limit":"ten")"), "limit", kInt);
  ExpectOneError(Body(R"(,"limit":true)"), "limit", kInt);
  ExpectOneError(Body(R"(,"limit":[5])"), "limit", kInt);
  EXPECT_EQ(Ok(Body(R"(,"limit":1)")).limit, 1);
  EXPECT_EQ(Ok(Body(R"(,"limit":100)")).limit, 100);
  EXPECT_EQ(Ok(Body(R"(,"limit":"5")")).limit, 5);
  EXPECT_EQ(Ok(Body(R"(,"limit":5.0)")).limit, 5);
  EXPECT_EQ(Ok(Body(R"(,"limit":null)")).limit, 10);
  ExpectOneError("", "limit", kRange,
                 {{"workspace_uuid", "w"},
                  {"entity", "agents"},
                  {"metric", "created"},
                  {"aggregation", "count"},
                  {"limit", "500"}});
  ExpectOneError("", "limit", kInt,
                 {{"workspace_uuid", "w"},
                  {"entity", "agents"},
                  {"metric", "created"},
                  {"aggregation", "count"},
                  {"limit", "5x"}});
}

TEST(WorkspaceMetricsRequest, BadBodies) {
  const std::string kMsg = "The request body must be a JSON object.";
  ExpectOneError("{not json", "body", kMsg);
  ExpectOneError(R"({"entity":"agents",})", "body", kMsg);
  ExpectOneError(R"([1,2])", "body", kMsg);
  ExpectOneError(R"("agents")", "body", kMsg);
  ExpectOneError(Body() + "garbage", "body", kMsg);
  // Whitespace only: no body, the query string is used.
  auto r = Ok(" \r\n\t", {{"workspace_uuid", "w"},
                          {"entity", "agents"},
                          {"metric", "created"},
                          {"aggregation", "count"}});
  EXPECT_EQ(r.metric, Metric::kCreated);
}

TEST(WorkspaceMetricsRequest, SeveralErrorsAreAllReported) {
  FieldErrors e = Errors(
      R"({"workspace_uuid":"w","entity":"agents","metric":"avg_duration","aggregation":"max",
          "group_by":"date","filters":{"period":"2d"},"order_by":"name","order_dir":"x","limit":0})");
  std::vector<std::string> fields;
  for (const auto& f : e) fields.push_back(f.field);
  EXPECT_EQ(fields, (std::vector<std::string>{"metric", "aggregation", "group_by", "granularity",
                                              "filters.period", "order_by", "order_dir", "limit"}));
  EXPECT_EQ(ValidationSummary(e),
            "The avg_duration metric is only available for workflows. (and 7 more errors)");
}

TEST(WorkspaceMetricsRequest, QueryParametersEqualBody) {
  StringPairs q = {{"workspace_uuid", "ws 1"},
                   {"entity", "workflows"},
                   {"metric", "executions"},
                   {"aggregation", "sum"},
                   {"group_by", "date"},
                   {"granularity", "monthly"},
                   {"filters[period]", "90d"},
                   {"filters[user_id]", "123"},
                   {"order_by", "date"},
                   {"order_dir", "asc"},
                   {"limit", "7"}};
  auto from_query = Ok("", q);
  auto from_body = Ok(R"({"workspace_uuid":"ws 1","entity":"workflows","metric":"executions",
      "aggregation":"sum","group_by":"date","granularity":"monthly",
      "filters":{"period":"90d","user_id":123},"order_by":"date","order_dir":"asc","limit":7})");
  EXPECT_EQ(CanonicalCacheKey(from_query), CanonicalCacheKey(from_body));
  EXPECT_EQ(from_query.workspace_id, "ws 1");
  EXPECT_EQ(from_query.period, Period::k90d);
  EXPECT_EQ(from_query.user_id, std::optional<std::string>("123"));
  EXPECT_EQ(from_query.limit, 7);
  EXPECT_EQ(from_query.descending, std::optional<bool>(false));
}

TEST(WorkspaceMetricsRequest, QueryAliasesAndPrecedence) {
  StringPairs base = {{"workspace_uuid", "w"},
                      {"entity", "agents"},
                      {"metric", "executions"},
                      {"aggregation", "count"}};
  auto with = [&base](StringPairs extra) {
    StringPairs q = base;
    q.insert(q.end(), extra.begin(), extra.end());
    return q;
  };
  EXPECT_EQ(Ok("", with({{"period", "7d"}})).period, Period::k7d);
  EXPECT_EQ(Ok("", with({{"user_id", "9"}})).user_id, std::optional<std::string>("9"));
  // filters[...] wins over the short alias, in either order.
  EXPECT_EQ(Ok("", with({{"filters[period]", "90d"}, {"period", "7d"}})).period, Period::k90d);
  EXPECT_EQ(Ok("", with({{"period", "7d"}, {"filters[period]", "90d"}})).period, Period::k90d);
  // Repeated key: the last wins.
  EXPECT_EQ(Ok("", with({{"limit", "3"}, {"limit", "4"}})).limit, 4);
  // Empty value = null.
  ExpectOneError("", "entity", "The entity field is required.",
                 {{"workspace_uuid", "w"},
                  {"entity", ""},
                  {"metric", "executions"},
                  {"aggregation", "count"}});
  // The body wins over the query, field by field.
  auto r = Ok(R"({"entity":"workflows","filters":{"period":"all"}})",
              with({{"filters[period]", "7d"}, {"limit", "3"}}));
  EXPECT_EQ(r.entity, event::EntityKind::kWorkflow);
  EXPECT_EQ(r.period, Period::kAll);
  EXPECT_EQ(r.limit, 3);
  EXPECT_EQ(r.workspace_id, "w");
  // Including a body null overriding a query value.
  EXPECT_EQ(Ok(R"({"group_by":null})", with({{"group_by", "user"}})).group_by, GroupBy::kNone);
}

TEST(WorkspaceMetricsRequest, CanonicalKeyDistinguishesEveryField) {
  auto base = Ok(Body());
  std::vector<query::WorkspaceMetricsRequest> variants(11, base);
  variants[0].workspace_id = "ws-2";
  variants[1].entity = event::EntityKind::kWorkflow;
  variants[2].metric = Metric::kShares;
  variants[3].aggregation = Aggregation::kSum;
  variants[4].group_by = GroupBy::kUser;
  variants[5].granularity = Granularity::kDay;
  variants[6].period = Period::k7d;
  variants[7].user_id = "1";
  variants[8].order_by = OrderBy::kValue;
  variants[9].descending = true;
  variants[10].limit = 11;
  std::set<std::string> keys = {CanonicalCacheKey(base)};
  for (const auto& v : variants) keys.insert(CanonicalCacheKey(v));
  EXPECT_EQ(keys.size(), variants.size() + 1);
  // Free strings cannot be spliced into each other.
  auto a = base, b = base;
  a.workspace_id = "x|1";
  b.workspace_id = "x";
  EXPECT_NE(CanonicalCacheKey(a), CanonicalCacheKey(b));
  a.user_id = "";
  b.user_id = std::nullopt;
  a.workspace_id = b.workspace_id = "x";
  EXPECT_NE(CanonicalCacheKey(a), CanonicalCacheKey(b));
}

TEST(ValidationErrorResponse, GroupsMessagesPerFieldInFirstSeenOrder) {
  Response r = ValidationErrorResponse({{"b", "B1"}, {"a", "A1"}, {"b", "B2"}});
  EXPECT_EQ(r.status, 422);
  EXPECT_EQ(r.body,
            R"J({"message":"B1 (and 2 more errors)","errors":{"b":["B1","B2"],"a":["A1"]}})J");
}

}  // namespace
}  // namespace tally::http
