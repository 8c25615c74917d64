#include "http/workspace_metrics_handler.h"

#include <gtest/gtest.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <set>

#include "common/sha256.h"

namespace tally::http {
namespace {

using nlohmann::json;

constexpr int64_t kNow = 1768472625123;  // 2026-01-15T10:23:45.123Z
constexpr DayNumber kFrom = 20439;       // 2025-12-17
constexpr DayNumber kTo = 20468;         // 2026-01-15

std::string KeysToml() {
  auto entry = [](const std::string& name, const std::string& token, const std::string& rest) {
    return "[[keys]]\nname = \"" + name + "\"\nsha256 = \"" + Sha256Hex(token) + "\"\n" + rest +
           "\n";
  };
  return entry("owner-a", "tok-owner-a",
               R"(workspaces = { "ws-a" = "owner", "ws-empty" = "owner" })") +
         entry("member-a", "tok-member-a", R"(workspaces = { "ws-a" = "member" })") +
         entry("owner-b", "tok-owner-b", R"(workspaces = { "ws-b" = "owner" })") +
         entry("admin", "tok-admin", "admin = true");
}

class HandlerTest : public ::testing::Test {
 protected:
  void SetUp() override { Build(300, 10000); }

  void Build(int ttl, size_t max_entries) {
    auto keys = KeyStore::LoadString(KeysToml());
    ASSERT_TRUE(keys.has_value()) << keys.error().message;
    MetricsBackend backend;
    backend.run =
        [this](const query::WorkspaceMetricsRequest& r) -> Result<query::WorkspaceMetricsResult> {
      ++calls_;
      last_ = r;
      if (fail_) return std::unexpected(*fail_);
      query::WorkspaceMetricsResult res;
      res.total = total_;
      res.from = kFrom;
      res.to = kTo;
      if (big_rows_ > 0) {
        // A large answer: ~140 bytes per rendered row.
        for (size_t i = 0; i < big_rows_; ++i) {
          res.rows.push_back({"u" + std::to_string(i), std::string(100, 'n'), "", 1});
        }
      } else if (r.group_by == query::GroupBy::kUser) {
        res.rows = {{"u1", "John Doe", "", 150}, {"u2", "Jane Smith", "", 120}};
      } else if (r.group_by == query::GroupBy::kDate) {
        res.rows = {{"", "", "2026-01-01", 45}, {"", "", "2026-01-02", 52.5}};
      }
      return res;
    };
    backend.workspace_known = [](std::string_view ws) { return ws == "ws-a" || ws == "ws-b"; };
    WorkspaceMetricsOptions options;
    options.cache_ttl_s = ttl;
    options.cache_max_entries = max_entries;
    handler_ = std::make_unique<WorkspaceMetricsHandler>(
        std::make_shared<const KeyStore>(std::move(*keys)), backend, &clock_, options, &registry_);
  }

  Response Call(const std::string& token, const std::string& body,
                const std::string& header = "Authorization") {
    Request r;
    r.method = "POST";
    r.path = "/api/v1/workspaces/metrics";
    if (!token.empty()) {
      r.headers.emplace_back(header, header == "Authorization" ? "Bearer " + token : token);
    }
    r.body = body;
    return handler_->Handle(r);
  }

  static std::string For(const std::string& ws, const std::string& extra = "") {
    return R"({"workspace_uuid":")" + ws +
           R"(","entity":"agents","metric":"created","aggregation":"count")" + extra + "}";
  }

  // The value of an unlabelled gauge in /metrics, or nullopt when it is not there.
  std::optional<double> GaugeValue(const std::string& name) const {
    const std::string text = registry_.RenderPrometheus();
    const std::string prefix = "\n" + name + " ";
    size_t pos = text.find(prefix);
    if (pos == std::string::npos) return std::nullopt;
    return std::stod(text.substr(pos + prefix.size()));
  }

  MetricsRegistry registry_;
  Clock clock_ = Clock::Fixed(kNow);
  std::unique_ptr<WorkspaceMetricsHandler> handler_;
  size_t big_rows_ = 0;  // > 0: the backend answers group_by=user with that many rows
  int calls_ = 0;
  query::WorkspaceMetricsRequest last_;
  std::optional<Error> fail_;
  double total_ = 47;
};

const json kUnauthenticated = json::parse(R"({"message":"Unauthenticated."})");
const json kForbidden = json::parse(R"({"message":"This action is unauthorized."})");
const json kNotFound = json::parse(R"({"error":"Workspace not found"})");

TEST_F(HandlerTest, SeedTotalOnlyResponse) {
  Response r = Call("tok-owner-a", For("ws-a"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "application/json");
  EXPECT_EQ(json::parse(r.body), json::parse(R"({
    "data": {"entity": "agents", "metric": "created", "aggregation": "count",
             "group_by": null, "granularity": null, "total": 47, "results": []},
    "meta": {"period": {"from": "2025-12-17", "to": "2026-01-15"},
             "cached_at": "2026-01-15T10:23:45.123Z", "cache_ttl": 300, "unit": null}})"));
  EXPECT_NE(r.body.find(R"("total":47,)"), std::string::npos) << r.body;  // no "47.0"
  EXPECT_EQ(last_.workspace_id, "ws-a");
  EXPECT_EQ(last_.metric, query::Metric::kCreated);
}

TEST_F(HandlerTest, GroupByUserRowsAndEchoedGranularity) {
  Response r =
      Call("tok-owner-a", For("ws-a", R"(,"group_by":"user","granularity":"daily","limit":5)"));
  ASSERT_EQ(r.status, 200) << r.body;
  json body = json::parse(r.body);
  EXPECT_EQ(body["data"], json::parse(R"({"entity": "agents", "metric": "created",
    "aggregation": "count", "group_by": "user", "granularity": "daily", "total": 47,
    "results": [{"user_id": "u1", "user_name": "John Doe", "value": 150},
                {"user_id": "u2", "user_name": "Jane Smith", "value": 120}]})"));
  EXPECT_EQ(last_.limit, 5);
}

TEST_F(HandlerTest, GroupByDateRows) {
  Response r = Call("tok-owner-a", For("ws-a", R"(,"group_by":"date","granularity":"weekly")"));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body)["data"], json::parse(R"({"entity": "agents", "metric": "created",
    "aggregation": "count", "group_by": "date", "granularity": "weekly", "total": 47,
    "results": [{"date": "2026-01-01", "value": 45}, {"date": "2026-01-02", "value": 52.5}]})"));
}

TEST_F(HandlerTest, AvgDurationHasMillisecondsUnit) {
  total_ = 1520.25;
  Response r = Call("tok-owner-a", R"({"workspace_uuid":"ws-a","entity":"workflows",
      "metric":"avg_duration","aggregation":"avg","filters":{"period":"7d"}})");
  ASSERT_EQ(r.status, 200) << r.body;
  json body = json::parse(r.body);
  EXPECT_EQ(body["data"]["entity"], "workflows");
  EXPECT_EQ(body["data"]["metric"], "avg_duration");
  EXPECT_EQ(body["data"]["aggregation"], "avg");
  EXPECT_EQ(body["data"]["total"], 1520.25);
  EXPECT_EQ(body["meta"]["unit"], "milliseconds");
  EXPECT_EQ(last_.period, query::Period::k7d);
}

TEST_F(HandlerTest, UnauthenticatedComesFirst) {
  for (const std::string& token : {std::string(), std::string("nope")}) {
    Response r = Call(token, "{bad json");
    EXPECT_EQ(r.status, 401);
    EXPECT_EQ(json::parse(r.body), kUnauthenticated);
  }
  EXPECT_EQ(calls_, 0);
}

TEST_F(HandlerTest, ApiKeyHeaderWorks) {
  EXPECT_EQ(Call("tok-owner-a", For("ws-a"), "api_key").status, 200);
}

TEST_F(HandlerTest, ValidationBeforeAuthorization) {
  // Even for a workspace the key does not hold, bad input is a 422.
  Response r = Call("tok-owner-b", R"({"workspace_uuid":"ws-a","entity":"bots"})");
  EXPECT_EQ(r.status, 422);
  EXPECT_EQ(json::parse(r.body)["errors"].size(), 3u);
}

TEST_F(HandlerTest, UnheldWorkspaceIs403WhetherOrNotItExists) {
  Response existing = Call("tok-owner-b", For("ws-a"));
  Response missing = Call("tok-owner-b", For("ws-nowhere"));
  EXPECT_EQ(existing.status, 403);
  EXPECT_EQ(missing.status, 403);
  EXPECT_EQ(existing.body, missing.body);
  EXPECT_EQ(json::parse(existing.body), kForbidden);
  EXPECT_EQ(calls_, 0);
}

TEST_F(HandlerTest, UnknownWorkspaceIs404ForAdmin) {
  Response r = Call("tok-admin", For("ws-nowhere"));
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(json::parse(r.body), kNotFound);
  EXPECT_EQ(calls_, 0);
}

TEST_F(HandlerTest, WorkspaceNamedInKeysButWithoutEventsIsServed) {
  Response r = Call("tok-owner-a", For("ws-empty"));
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Call("tok-admin", For("ws-empty")).status, 200);
}

TEST_F(HandlerTest, MemberIs403OwnerAndAdminPass) {
  Response member = Call("tok-member-a", For("ws-a"));
  EXPECT_EQ(member.status, 403);
  EXPECT_EQ(json::parse(member.body), kForbidden);
  EXPECT_EQ(Call("tok-owner-a", For("ws-a")).status, 200);
  EXPECT_EQ(Call("tok-admin", For("ws-b")).status, 200);
}

TEST_F(HandlerTest, CacheServesSameCachedAtWithinTtl) {
  Response first = Call("tok-owner-a", For("ws-a"));
  clock_ = Clock::Fixed(kNow + 299'999);
  total_ = 1000;  // the backend changed, but the cache still answers
  Response second = Call("tok-owner-a", For("ws-a"));
  EXPECT_EQ(calls_, 1);
  EXPECT_EQ(first.body, second.body);
  EXPECT_EQ(json::parse(second.body)["meta"]["cached_at"], "2026-01-15T10:23:45.123Z");
  // The admin asking the same thing shares the entry (the key is not part of the cache key).
  EXPECT_EQ(Call("tok-admin", For("ws-a")).body, first.body);
  EXPECT_EQ(calls_, 1);

  clock_ = Clock::Fixed(kNow + 300'000);  // expired
  Response third = Call("tok-owner-a", For("ws-a"));
  EXPECT_EQ(calls_, 2);
  json body = json::parse(third.body);
  EXPECT_EQ(body["meta"]["cached_at"], "2026-01-15T10:28:45.123Z");
  EXPECT_EQ(body["data"]["total"], 1000);

  std::string text = registry_.RenderPrometheus();
  EXPECT_NE(text.find(R"(tally_http_metrics_cache_total{result="hit"} 2)"), std::string::npos)
      << text;
  EXPECT_NE(text.find(R"(tally_http_metrics_cache_total{result="miss"} 2)"), std::string::npos)
      << text;
}

TEST_F(HandlerTest, DifferentRequestsDoNotShareEntries) {
  Call("tok-owner-a", For("ws-a"));
  Call("tok-owner-a", For("ws-a", R"(,"limit":11)"));
  Call("tok-owner-a", For("ws-a", R"(,"filters":{"user_id":1})"));
  EXPECT_EQ(calls_, 3);
  // Body and query forms of one request share an entry.
  Request q;
  q.method = "GET";
  q.headers = {{"Authorization", "Bearer tok-owner-a"}};
  q.query = {{"workspace_uuid", "ws-a"},
             {"entity", "agents"},
             {"metric", "created"},
             {"aggregation", "count"},
             {"filters[user_id]", "1"}};
  EXPECT_EQ(handler_->Handle(q).status, 200);
  EXPECT_EQ(calls_, 3);
}

TEST_F(HandlerTest, AuthorizationIsCheckedBeforeTheCache) {
  ASSERT_EQ(Call("tok-owner-a", For("ws-a")).status, 200);
  EXPECT_EQ(Call("tok-owner-b", For("ws-a")).status, 403);
  EXPECT_EQ(Call("tok-member-a", For("ws-a")).status, 403);
  EXPECT_EQ(Call("nope", For("ws-a")).status, 401);
}

TEST_F(HandlerTest, TtlZeroDisablesTheCache) {
  Build(0, 10000);
  Response a = Call("tok-owner-a", For("ws-a"));
  clock_ = Clock::Fixed(kNow + 1);
  Response b = Call("tok-owner-a", For("ws-a"));
  EXPECT_EQ(calls_, 2);
  EXPECT_EQ(json::parse(a.body)["meta"]["cache_ttl"], 0);
  EXPECT_EQ(json::parse(b.body)["meta"]["cached_at"], "2026-01-15T10:23:45.124Z");
}

TEST_F(HandlerTest, CacheIsBounded) {
  Build(300, 2);
  Call("tok-owner-a", For("ws-a", R"(,"limit":1)"));
  Call("tok-owner-a", For("ws-a", R"(,"limit":2)"));
  Call("tok-owner-a", For("ws-a", R"(,"limit":3)"));  // evicts limit=1
  EXPECT_EQ(calls_, 3);
  Call("tok-owner-a", For("ws-a", R"(,"limit":3)"));
  Call("tok-owner-a", For("ws-a", R"(,"limit":2)"));
  EXPECT_EQ(calls_, 3);
  Call("tok-owner-a", For("ws-a", R"(,"limit":1)"));
  EXPECT_EQ(calls_, 4);
}

// The default cache holds 64 MiB: a response over 1/8 of that (8 MiB) is never cached.
TEST_F(HandlerTest, ResponseOverAnEighthOfTheCacheIsNotCached) {
  big_rows_ = 70'000;  // ~10 MB rendered
  const std::string body = For("ws-a", R"(,"group_by":"user")");
  Response first = Call("tok-owner-a", body);
  ASSERT_EQ(first.status, 200);
  ASSERT_GT(first.body.size(), 8u << 20);
  Response second = Call("tok-owner-a", body);
  EXPECT_EQ(second.status, 200);
  EXPECT_EQ(calls_, 2);
  EXPECT_EQ(GaugeValue("tally_http_metrics_cache_entries"), 0);
  // A small answer is still cached.
  big_rows_ = 0;
  Call("tok-owner-a", For("ws-a"));
  Call("tok-owner-a", For("ws-a"));
  EXPECT_EQ(calls_, 3);
}

// Distinct large queries: the cache stays within its 64 MiB (default) instead of growing with
// every entry up to the count limit, and the oldest entries go first.
TEST_F(HandlerTest, CacheIsBoundedInBytes) {
  big_rows_ = 7'500;  // ~1 MB rendered
  for (int limit = 1; limit <= 100; ++limit) {
    ASSERT_EQ(
        Call("tok-owner-a", For("ws-a", R"(,"group_by":"user","limit":)" + std::to_string(limit)))
            .status,
        200);
  }
  EXPECT_EQ(calls_, 100);
  std::optional<double> bytes = GaugeValue("tally_http_metrics_cache_bytes");
  std::optional<double> entries = GaugeValue("tally_http_metrics_cache_entries");
  ASSERT_TRUE(bytes.has_value());
  ASSERT_TRUE(entries.has_value());
  EXPECT_LE(*bytes, 64.0 * (1 << 20));
  EXPECT_GT(*bytes, 32.0 * (1 << 20));
  EXPECT_LT(*entries, 100);
  EXPECT_GT(*entries, 30);
  // The newest is still cached, the oldest was evicted.
  Call("tok-owner-a", For("ws-a", R"(,"group_by":"user","limit":100)"));
  EXPECT_EQ(calls_, 100);
  Call("tok-owner-a", For("ws-a", R"(,"group_by":"user","limit":1)"));
  EXPECT_EQ(calls_, 101);
}

// Expired entries are released by any later request, not only by a lookup of their own key.
TEST_F(HandlerTest, ExpiredEntriesAreReleased) {
  for (int limit = 1; limit <= 5; ++limit) {
    Call("tok-owner-a", For("ws-a", R"(,"limit":)" + std::to_string(limit)));
  }
  EXPECT_EQ(GaugeValue("tally_http_metrics_cache_entries"), 5);
  const double five = GaugeValue("tally_http_metrics_cache_bytes").value_or(0);
  EXPECT_GT(five, 0);
  clock_ = Clock::Fixed(kNow + 300'000);  // all five expired
  Call("tok-owner-a", For("ws-b"));       // 403: no cache access at all
  Call("tok-owner-a", For("ws-a", R"(,"limit":50)"));
  EXPECT_EQ(GaugeValue("tally_http_metrics_cache_entries"), 1);
  EXPECT_LT(GaugeValue("tally_http_metrics_cache_bytes").value_or(1e18), five / 2);
}

TEST_F(HandlerTest, BackendErrorsAreMapped) {
  fail_ = Error{ErrorCode::kInvalidArgument, "The range is too long.", "filters.period"};
  Response r = Call("tok-owner-a", For("ws-a"));
  EXPECT_EQ(r.status, 422);
  EXPECT_EQ(json::parse(r.body), json::parse(R"({"message":"The range is too long.",
      "errors":{"filters.period":["The range is too long."]}})"));
  fail_ = Error{ErrorCode::kUnavailable, "store closed", ""};
  r = Call("tok-owner-a", For("ws-a"));
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(json::parse(r.body), json::parse(R"({"message":"store closed"})"));
  fail_ = Error{ErrorCode::kInternal, "secret detail", ""};
  r = Call("tok-owner-a", For("ws-a"));
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(json::parse(r.body), json::parse(R"({"message":"Internal server error."})"));
  // Failures are not cached.
  fail_.reset();
  EXPECT_EQ(Call("tok-owner-a", For("ws-a")).status, 200);
}

}  // namespace
}  // namespace tally::http
