#include "http/superagents_handler.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "common/sha256.h"
#include "http/error_mapping.h"
#include "http/service.h"
#include "http/superagents_request.h"
#include "query/testing/superagents_testing.h"

namespace tally::http {
namespace {

using nlohmann::json;

std::string KeysToml() {
  auto entry = [](const std::string& name, const std::string& token, const std::string& rest) {
    return "[[keys]]\nname = \"" + name + "\"\nsha256 = \"" + Sha256Hex(token) + "\"\n" + rest +
           "\n";
  };
  return entry("owner-a", "tok-owner-a", R"(workspaces = { "ws-a" = "owner" })") +
         entry("member-ab", "tok-member-ab",
               R"(workspaces = { "ws-a" = "member", "ws-b" = "member" })") +
         entry("member-b", "tok-member-b", R"(workspaces = { "ws-b" = "member" })") +
         entry("admin", "tok-admin", "admin = true");
}

const json kUnauthenticated = {{"message", "Unauthenticated."}};
const json kForbidden = {{"message", "This action is unauthorized."}};
const json kNotFound = {{"error", "Workspace not found"}};

// Row i: id "a<i, 3 digits>", total credits i.
query::SuperagentRow Row(int i) {
  query::SuperagentRow r;
  char id[16];
  std::snprintf(id, sizeof id, "a%03d", i);
  r.superagent_id = id;
  r.superagent_name = "Agent " + std::to_string(i);
  r.active_users_last_30d = i % 7;
  r.message_credits_consumed = i;
  r.integration_credits_consumed = 0.5;
  r.total_credits_consumed = i + 0.5;
  r.owner_user_id = "user_" + std::to_string(i);
  if (i % 2 == 0) r.created_by_email = "u" + std::to_string(i) + "@x.com";
  r.created_at_ms = 1736519400000 + i * 1000LL;  // 2025-01-10T14:30:00Z + i s
  return r;
}

class SuperagentsHandlerTest : public ::testing::Test {
 protected:
  void SetUp() override { Make({}); }

  void Make(SuperagentsOptions options) {
    auto keys = KeyStore::LoadString(KeysToml());
    ASSERT_TRUE(keys.has_value()) << keys.error().message;
    SuperagentsBackend backend;
    backend.run = [this](const query::SuperagentsRequest& r)
        -> Result<std::shared_ptr<const query::SuperagentsListing>> {
      ++calls_;
      last_ = r;
      if (fail_) return std::unexpected(*fail_);
      query::SuperagentsResult res;
      for (int i = 0; i < rows_; ++i) res.rows.push_back(Row(i));
      if (shared_table_) {
        return std::make_shared<const SharedTableListing>(std::move(res), shared_table_);
      }
      return std::make_shared<const query::RowsListing>(std::move(res));
    };
    backend.workspace_known = [](std::string_view ws) { return ws == "ws-a" || ws == "ws-b"; };
    handler_ = std::make_unique<SuperagentsHandler>(
        std::make_shared<const KeyStore>(std::move(*keys)), backend, options);
  }

  Response Call(const std::string& token, StringPairs query, const std::string& ws = "ws-a",
                const std::string& header = "api_key") {
    Request r;
    r.method = "GET";
    r.path = "/api/v1/monitoring/" + ws + "/superagents";
    r.path_params = {{"workspace_id", ws}};
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

  // 422 with exactly one error on `field`.
  void ExpectInvalid(StringPairs query, const std::string& field, const std::string& message) {
    Response r = Call("tok-owner-a", std::move(query));
    Expect(r, 422, json{{"message", message}, {"errors", {{field, {message}}}}});
  }

  // Rows over a table shared with other listings (like the engine's agent table).
  class SharedTableListing final : public query::SuperagentsListing {
   public:
    SharedTableListing(query::SuperagentsResult res, const void* table)
        : rows_(std::move(res)), table_(table) {}
    size_t size() const override { return rows_.size(); }
    query::SuperagentRow Row(size_t i) const override { return rows_.Row(i); }
    DayNumber from() const override { return 0; }
    DayNumber to() const override { return 0; }
    size_t OwnBytes() const override { return 100; }
    const void* SharedTable() const override { return table_; }
    size_t SharedTableBytes() const override { return 10'000; }

   private:
    query::RowsListing rows_;
    const void* table_;
  };

  std::unique_ptr<SuperagentsHandler> handler_;
  const void* shared_table_ = nullptr;  // when set, listings share this table
  int rows_ = 2;
  std::optional<Error> fail_;
  int calls_ = 0;
  query::SuperagentsRequest last_;
};

TEST_F(SuperagentsHandlerTest, SeedShapedResponse) {
  Response r = Call("tok-owner-a", {});
  Expect(r, 200, json::parse(R"({"superagents": [
    {"superagent_id": "a000", "superagent_name": "Agent 0", "active_users_last_30d": 0,
     "message_credits_consumed": 0, "integration_credits_consumed": 0.5,
     "total_credits_consumed": 0.5, "owner_user_id": "user_0", "created_by_email": "u0@x.com",
     "created_at": "2025-01-10T14:30:00Z"},
    {"superagent_id": "a001", "superagent_name": "Agent 1", "active_users_last_30d": 1,
     "message_credits_consumed": 1, "integration_credits_consumed": 0.5,
     "total_credits_consumed": 1.5, "owner_user_id": "user_1", "created_by_email": null,
     "created_at": "2025-01-10T14:30:01Z"}],
   "pagination": {"total": 2, "limit": 50, "has_more": false, "next_cursor": null}})"));
  EXPECT_EQ(last_.workspace_id, "ws-a");
  EXPECT_EQ(last_.sort.field, query::SuperagentSortField::kTotalCredits);
  EXPECT_TRUE(last_.sort.descending);
  EXPECT_FALSE(last_.from.has_value());
  EXPECT_EQ(last_.visibility, query::VisibilityFilter::kAny);
}

TEST_F(SuperagentsHandlerTest, PassesFiltersToTheEngine) {
  Response r = Call("tok-owner-a", {{"from", "2026-01-01"},
                                    {"to", "2026-01-31"},
                                    {"sort", "superagent_name"},
                                    {"search", "Bot"},
                                    {"visibility", "public"}});
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(last_.from, std::optional<DayNumber>(*ParseDay("2026-01-01")));
  EXPECT_EQ(last_.to, std::optional<DayNumber>(*ParseDay("2026-01-31")));
  EXPECT_EQ(last_.sort.field, query::SuperagentSortField::kName);
  EXPECT_FALSE(last_.sort.descending);
  EXPECT_EQ(last_.search, "Bot");
  EXPECT_EQ(last_.visibility, query::VisibilityFilter::kPublic);
}

TEST_F(SuperagentsHandlerTest, Auth) {
  Expect(Call("", {}), 401, kUnauthenticated);
  Expect(Call("nope", {}), 401, kUnauthenticated);
  EXPECT_EQ(Call("tok-owner-a", {}, "ws-a", "Authorization").status, 200);  // Bearer
  EXPECT_EQ(Call("tok-member-ab", {}, "ws-b").status, 200);                 // member
  Expect(Call("tok-member-b", {}, "ws-a"), 403, kForbidden);
  Expect(Call("tok-member-b", {}, "ws-unknown"), 403, kForbidden);  // existence not revealed
  Expect(Call("tok-admin", {}, "ws-unknown"), 404, kNotFound);
  EXPECT_EQ(Call("tok-admin", {}, "ws-b").status, 200);
  EXPECT_EQ(calls_, 3);
}

TEST_F(SuperagentsHandlerTest, EveryValidation) {
  ExpectInvalid({{"limit", "0"}}, "limit", "The limit field must be between 1 and 50.");
  ExpectInvalid({{"limit", "51"}}, "limit", "The limit field must be between 1 and 50.");
  ExpectInvalid({{"limit", "ten"}}, "limit", "The limit field must be an integer.");
  ExpectInvalid({{"from", "2026-01-01"}}, "to", "The to field is required when from is present.");
  ExpectInvalid({{"to", "2026-01-01"}}, "from", "The from field is required when to is present.");
  ExpectInvalid({{"from", "2026-02-30"}, {"to", "2026-03-01"}}, "from",
                "The from field must match the format Y-m-d.");
  ExpectInvalid({{"from", "2026-01-01"}, {"to", "01/02/2026"}}, "to",
                "The to field must match the format Y-m-d.");
  ExpectInvalid({{"from", "2026-02-02"}, {"to", "2026-02-01"}}, "to",
                "The to field must be a date after or equal to from.");
  ExpectInvalid({{"from", "2000-01-01"}, {"to", "2026-02-01"}}, "from",
                "The date range must not be longer than 3660 days.");
  ExpectInvalid({{"sort", "name"}}, "sort", "The selected sort is invalid.");
  ExpectInvalid({{"sort", "--created_at"}}, "sort", "The selected sort is invalid.");
  ExpectInvalid({{"visibility", "secret"}}, "visibility", "The selected visibility is invalid.");
  ExpectInvalid({{"search", std::string(101, 'x')}}, "search",
                "The search field must not be greater than 100 characters.");
  EXPECT_EQ(Call("tok-owner-a", {{"search", std::string(100, 'x')}}).status, 200);
  EXPECT_EQ(Call("tok-owner-a", {{"limit", "1"}}).status, 200);
  EXPECT_EQ(Call("tok-owner-a", {{"limit", "50"}}).status, 200);
  // Several errors at once.
  Response r = Call("tok-owner-a", {{"limit", "0"}, {"sort", "x"}});
  EXPECT_EQ(r.status, 422);
  json body = json::parse(r.body);
  EXPECT_TRUE(body["errors"].contains("limit"));
  EXPECT_TRUE(body["errors"].contains("sort"));
}

// The limit of 100 counts characters (code points), not bytes; malformed UTF-8 is named.
TEST_F(SuperagentsHandlerTest, SearchLimitCountsCharactersNotBytes) {
  std::string e_acute_51;
  for (int i = 0; i < 51; ++i) e_acute_51 += "\xC3\xA9";  // 102 bytes, 51 characters
  EXPECT_EQ(Call("tok-owner-a", {{"search", e_acute_51}}).status, 200);
  EXPECT_EQ(last_.search, e_acute_51);
  std::string e_acute_100;
  for (int i = 0; i < 100; ++i) e_acute_100 += "\xC3\xA9";
  EXPECT_EQ(Call("tok-owner-a", {{"search", e_acute_100}}).status, 200);
  std::string emoji_100;
  for (int i = 0; i < 100; ++i) emoji_100 += "\xF0\x9F\x98\x80";  // 400 bytes
  EXPECT_EQ(Call("tok-owner-a", {{"search", emoji_100}}).status, 200);
  ExpectInvalid({{"search", e_acute_100 + "x"}}, "search",
                "The search field must not be greater than 100 characters.");
  for (const char* bad : {"caf\xC3", "\xC3(", "\xFF",
                          "a\xED\xA0\x80"
                          "b",
                          "\xC0\xAF"}) {
    SCOPED_TRACE(testing::PrintToString(std::string(bad)));
    ExpectInvalid({{"search", bad}}, "search", "The search field must be a valid UTF-8 string.");
  }
  // Over a real query string: %-escapes decode to the bytes checked above.
  Request r;
  r.method = "GET";
  SplitTarget("/api/v1/monitoring/ws-a/superagents?search=%C3%A9t%C3", &r);
  EXPECT_EQ(r.FindQuery("search")->size(), 4u);
  ExpectInvalid(r.query, "search", "The search field must be a valid UTF-8 string.");
}

TEST_F(SuperagentsHandlerTest, EngineErrors) {
  fail_ = Error{ErrorCode::kUnavailable, "store down", ""};
  EXPECT_EQ(Call("tok-owner-a", {}).status, 503);
}

TEST_F(SuperagentsHandlerTest, CursorWalkReturnsEveryRowOnceInOrder) {
  rows_ = 123;
  std::vector<std::string> seen;
  std::string cursor;
  int pages = 0;
  for (;;) {
    StringPairs q = {{"limit", "50"}};
    if (!cursor.empty()) q.emplace_back("cursor", cursor);
    Response r = Call("tok-owner-a", q);
    ASSERT_EQ(r.status, 200) << r.body;
    json body = json::parse(r.body);
    for (const json& row : body["superagents"]) seen.push_back(row["superagent_id"]);
    EXPECT_EQ(body["pagination"]["total"], 123);
    EXPECT_EQ(body["pagination"]["limit"], 50);
    ++pages;
    rows_ = 5;  // the "store" changes under the walk: pages must not notice
    if (!body["pagination"]["has_more"].get<bool>()) {
      EXPECT_TRUE(body["pagination"]["next_cursor"].is_null());
      break;
    }
    cursor = body["pagination"]["next_cursor"];
    ASSERT_LT(pages, 10);
  }
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(calls_, 1);  // only the first page runs the engine
  ASSERT_EQ(seen.size(), 123u);
  for (int i = 0; i < 123; ++i) EXPECT_EQ(seen[i], Row(i).superagent_id);
}

TEST_F(SuperagentsHandlerTest, CursorPagesIgnoreFiltersButHonourLimit) {
  rows_ = 10;
  json first = json::parse(Call("tok-owner-a", {{"limit", "3"}}).body);
  std::string cursor = first["pagination"]["next_cursor"];
  Response r = Call("tok-owner-a", {{"cursor", cursor},
                                    {"limit", "4"},
                                    {"sort", "created_at"},
                                    {"search", "zzz"},
                                    {"visibility", "private"}});
  ASSERT_EQ(r.status, 200) << r.body;
  json body = json::parse(r.body);
  ASSERT_EQ(body["superagents"].size(), 4u);
  EXPECT_EQ(body["superagents"][0]["superagent_id"], "a003");
  EXPECT_EQ(body["superagents"][3]["superagent_id"], "a006");
  EXPECT_TRUE(body["pagination"]["has_more"].get<bool>());
  EXPECT_EQ(calls_, 1);
}

TEST_F(SuperagentsHandlerTest, MalformedAndTamperedCursors) {
  rows_ = 10;
  json first = json::parse(Call("tok-member-ab", {{"limit", "3"}}).body);
  const std::string cursor = first["pagination"]["next_cursor"];
  auto expect_invalid = [&](const std::string& c, const std::string& ws = "ws-a") {
    Response r = Call("tok-member-ab", {{"cursor", c}}, ws);
    EXPECT_EQ(r.status, 400) << c << " " << r.body;
    json body = json::parse(r.body, nullptr, false);
    EXPECT_EQ(body["message"], "The cursor is invalid.") << r.body;
    EXPECT_TRUE(body["errors"]["cursor"].is_array()) << r.body;
  };
  expect_invalid("not a cursor!");
  expect_invalid("eyJsYXN0X2lkIjoiMTIzIn0=");  // the contract's example
  expect_invalid("AAAA");
  expect_invalid(cursor.substr(0, cursor.size() - 1));
  expect_invalid(cursor + "A");
  for (size_t i = 0; i < cursor.size(); i += 7) {  // flip one character anywhere
    std::string t = cursor;
    t[i] = t[i] == 'A' ? 'B' : 'A';
    expect_invalid(t);
  }
  // Re-signed payload with another offset cannot be forged without the key: change the offset
  // bytes and keep the tag.
  std::optional<std::string> raw = Base64UrlDecode(cursor);
  ASSERT_TRUE(raw.has_value());
  (*raw)[20] = static_cast<char>((*raw)[20] + 1);
  expect_invalid(Base64UrlEncode(*raw));
  // A valid cursor of ws-a used on ws-b (same key holds both): rejected.
  expect_invalid(cursor, "ws-b");
  // The untouched cursor still works.
  EXPECT_EQ(Call("tok-member-ab", {{"cursor", cursor}}).status, 200);
  // Too long.
  ExpectInvalid({{"cursor", std::string(1025, 'A')}}, "cursor",
                "The cursor field must not be greater than 1024 characters.");
}

TEST_F(SuperagentsHandlerTest, ExpiredAndEvictedCursors) {
  Make({.max_result_sets = 2, .ttl = std::chrono::milliseconds(0)});
  rows_ = 10;
  json first = json::parse(Call("tok-owner-a", {{"limit", "3"}}).body);
  Response r = Call("tok-owner-a", {{"cursor", first["pagination"]["next_cursor"]}});
  EXPECT_EQ(r.status, 400) << r.body;
  json body = json::parse(r.body);
  EXPECT_EQ(body["message"], "The cursor has expired; restart from the first page.");
  EXPECT_TRUE(body["errors"]["cursor"].is_array());

  Make({.max_result_sets = 2, .ttl = std::chrono::minutes(10)});
  std::vector<std::string> cursors;
  for (int i = 0; i < 3; ++i) {
    cursors.push_back(
        json::parse(Call("tok-owner-a", {{"limit", "3"}}).body)["pagination"]["next_cursor"]);
  }
  std::set<std::string> distinct(cursors.begin(), cursors.end());
  EXPECT_EQ(distinct.size(), 3u);
  EXPECT_EQ(Call("tok-owner-a", {{"cursor", cursors[0]}}).status, 400);  // evicted (oldest)
  EXPECT_EQ(Call("tok-owner-a", {{"cursor", cursors[1]}}).status, 200);
  EXPECT_EQ(Call("tok-owner-a", {{"cursor", cursors[2]}}).status, 200);
}

TEST_F(SuperagentsHandlerTest, ByteBoundEvictsOldestSets) {
  Make({.max_result_sets = 256,
        .ttl = std::chrono::minutes(10),
        .max_cached_bytes = 25 * sizeof(query::SuperagentRow)});
  rows_ = 10;
  std::vector<std::string> cursors;
  for (int i = 0; i < 3; ++i) {  // 30 rows > 25: the first set must go
    cursors.push_back(
        json::parse(Call("tok-owner-a", {{"limit", "3"}}).body)["pagination"]["next_cursor"]);
  }
  EXPECT_EQ(Call("tok-owner-a", {{"cursor", cursors[0]}}).status, 400);
  EXPECT_EQ(Call("tok-owner-a", {{"cursor", cursors[1]}}).status, 200);
  EXPECT_EQ(Call("tok-owner-a", {{"cursor", cursors[2]}}).status, 200);
}

// A table shared by several cached sets counts once against the bound, and again for each set
// that pins another one.
TEST_F(SuperagentsHandlerTest, SharedTableCountsOnce) {
  Make({.max_result_sets = 256, .ttl = std::chrono::minutes(10), .max_cached_bytes = 10'500});
  rows_ = 10;
  int tables[2];
  auto first_page = [&] {
    return json::parse(Call("tok-owner-a", {{"limit", "3"}}).body)["pagination"]["next_cursor"]
        .get<std::string>();
  };
  shared_table_ = &tables[0];
  std::vector<std::string> same;  // 3 x 100 + 10,000 <= 10,500: all stay
  for (int i = 0; i < 3; ++i) same.push_back(first_page());
  for (const std::string& c : same) EXPECT_EQ(Call("tok-owner-a", {{"cursor", c}}).status, 200);
  shared_table_ = &tables[1];  // a second table does not fit next to the first: evicts them all
  const std::string other = first_page();
  for (const std::string& c : same) EXPECT_EQ(Call("tok-owner-a", {{"cursor", c}}).status, 400);
  EXPECT_EQ(Call("tok-owner-a", {{"cursor", other}}).status, 200);
}

TEST(Base64Url, RoundTripsAndRejectsNonCanonical) {
  for (std::string s : {"", "a", "ab", "abc", "abcd", "\xff\xfe\x00\x01"}) {
    std::optional<std::string> back = Base64UrlDecode(Base64UrlEncode(s));
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(*back, s);
  }
  EXPECT_EQ(Base64UrlEncode("\xfb\xff"), "-_8");
  EXPECT_FALSE(Base64UrlDecode("-_9").has_value());   // non-zero unused bits
  EXPECT_FALSE(Base64UrlDecode("YQ==").has_value());  // padding
  EXPECT_FALSE(Base64UrlDecode("Y").has_value());
}

// BuildRouter: the route exists only with a complete backend; half a backend is refused.
TEST(SuperagentsService, OptionalRegistration) {
  MetricsRegistry registry;
  Clock clock = Clock::Fixed(0);
  auto deps = [&] {
    ServiceDeps d;
    d.keys = std::make_shared<const KeyStore>(std::move(*KeyStore::LoadString(KeysToml())));
    d.metrics = &registry;
    d.clock = &clock;
    d.workspace_metrics.run = [](const query::WorkspaceMetricsRequest&) {
      return Result<query::WorkspaceMetricsResult>(query::WorkspaceMetricsResult{});
    };
    d.workspace_metrics.workspace_known = [](std::string_view) { return true; };
    return d;
  };
  auto call = [](const Router& router) {
    Request r;
    r.method = "GET";
    r.path = "/api/v1/monitoring/ws-a/superagents";
    r.headers.emplace_back("api_key", "tok-owner-a");
    return router.Handle(r);
  };

  auto without = BuildRouter(deps());
  ASSERT_TRUE(without.has_value()) << without.error().message;
  EXPECT_EQ(call(**without).status, 404);

  ServiceDeps half = deps();
  half.superagents.workspace_known = [](std::string_view) { return true; };
  auto refused = BuildRouter(std::move(half));
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().field, "superagents");

  ServiceDeps full = deps();
  full.superagents.workspace_known = [](std::string_view) { return true; };
  full.superagents.run = [](const query::SuperagentsRequest& r) {
    query::SuperagentsResult res;
    query::SuperagentRow row = Row(7);
    row.superagent_id = r.workspace_id;  // shows the path parameter reached the engine
    res.rows.push_back(row);
    return Result<std::shared_ptr<const query::SuperagentsListing>>(
        std::make_shared<const query::RowsListing>(std::move(res)));
  };
  auto with = BuildRouter(std::move(full));
  ASSERT_TRUE(with.has_value()) << with.error().message;
  Response r = call(**with);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body)["superagents"][0]["superagent_id"], "ws-a");
}

}  // namespace
}  // namespace tally::http
