#include "http/events_handler.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <future>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

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
         entry("member-a", "tok-member-a", R"(workspaces = { "ws-a" = "member" })") +
         entry("owner-b", "tok-owner-b", R"(workspaces = { "ws-b" = "owner" })") +
         entry("org-only", "tok-org", R"(organizations = ["org_7"])") +
         entry("owner-a-org7", "tok-a-org7",
               "workspaces = { \"ws-a\" = \"owner\" }\norganizations = [\"org_7\"]") +
         entry("admin", "tok-admin", "admin = true") +
         "[[workspaces]]\nid = \"ws-bound\"\norganization = \"org_5\"\n";
}

// Event() naming an organization.
std::string EventInOrg(const std::string& id, const std::string& ws, const std::string& org) {
  return R"({"specversion":"1.0","id":")" + id +
         R"(","source":"unit/events","type":"agent.executed","time":"2026-02-20T10:00:00Z",)"
         R"("data":{"workspace_id":")" +
         ws + R"(","organization_id":")" + org +
         R"(","user":{"id":"u1"},"agent":{"id":"agent-1"}}})";
}

// A valid event of `ws`, as a producer would write it (spacing kept verbatim when published).
std::string Event(const std::string& id, const std::string& ws) {
  return R"({"specversion":"1.0","id":")" + id +
         R"(","source":"unit/events","type":"agent.executed","time":"2026-02-20T10:00:00Z",)"
         R"("data":{"workspace_id":")" +
         ws + R"(","user":{"id":"u1"},"agent":{"id":"agent-1"}}})";
}

const json kUnauthenticated = {{"message", "Unauthenticated."}};
const json kUnsupported = {
    {"message",
     "Unsupported Content-Type; send application/cloudevents+json or "
     "application/cloudevents-batch+json."},
    {"accepted", {"application/cloudevents+json", "application/cloudevents-batch+json"}}};

constexpr const char* kBatch = "application/cloudevents-batch+json";
constexpr const char* kSingle = "application/cloudevents+json";

class EventsHandlerTest : public ::testing::Test {
 protected:
  void SetUp() override { Build(EventsOptions{}); }

  void Build(EventsOptions options) {
    auto keys = KeyStore::LoadString(KeysToml());
    ASSERT_TRUE(keys.has_value()) << keys.error().message;
    EventsBackend backend;
    backend.publish = [this](std::span<const EventMessage> events) -> Status {
      ++calls_;
      published_.clear();
      for (const EventMessage& e : events) published_.emplace_back(e.key, e.value);
      if (fail_) return std::unexpected(*fail_);
      return Ok();
    };
    handler_ = std::make_unique<EventsHandler>(std::make_shared<const KeyStore>(std::move(*keys)),
                                               backend, options, &registry_);
  }

  Response Call(const std::string& token, const std::string& content_type, const std::string& body,
                const std::string& header = "Authorization") {
    Request r;
    r.method = "POST";
    r.path = "/v1/events";
    if (!token.empty()) {
      r.headers.emplace_back(header, header == "Authorization" ? "Bearer " + token : token);
    }
    if (!content_type.empty()) r.headers.emplace_back("Content-Type", content_type);
    r.body = body;
    return handler_->Handle(r);
  }

  static json Body(const Response& r) { return json::parse(r.body, nullptr, false); }

  double Metric(const std::string& name, const Labels& labels = {}) {
    return registry_.GetCounter(name, "", labels)->Value();
  }

  MetricsRegistry registry_;
  std::unique_ptr<EventsHandler> handler_;
  int calls_ = 0;
  std::vector<std::pair<std::string, std::string>> published_;
  std::optional<Error> fail_;
};

TEST(SplitJsonArrayTest, SplitsTopLevelElementsVerbatim) {
  auto r = SplitJsonArray(" [ {\"a\":[1,{\"b\":\"],}\"}]} ,\n\t2 , \"x\\\"]\" ,[] ] \n", 10);
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->size(), 4u);
  EXPECT_EQ((*r)[0], "{\"a\":[1,{\"b\":\"],}\"}]}");
  EXPECT_EQ((*r)[1], "2");
  EXPECT_EQ((*r)[2], "\"x\\\"]\"");
  EXPECT_EQ((*r)[3], "[]");

  auto empty = SplitJsonArray("[ ]", 10);
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->empty());
  auto one = SplitJsonArray("[{}]", 1);
  ASSERT_TRUE(one);
  EXPECT_EQ(one->size(), 1u);
  // Element contents are not validated here (their parser does it).
  auto junk = SplitJsonArray("[nope, {\"a\" 1}]", 10);
  ASSERT_TRUE(junk);
  EXPECT_EQ((*junk)[0], "nope");
  EXPECT_EQ((*junk)[1], "{\"a\" 1}");
}

TEST(SplitJsonArrayTest, RejectsMalformedArrays) {
  struct Case {
    const char* text;
    const char* message;
  };
  for (const Case& c : std::vector<Case>{
           {"", "expected '[' at byte 0"},
           {"  {\"a\":1}", "expected '[' at byte 2"},
           {"[", "unterminated array at byte 1"},
           {"[{}", "unterminated array at byte 3"},
           {"[{}, ", "unterminated array at byte 5"},
           {"[{}] x", "content after the array at byte 5"},
           {"[{}][]", "content after the array at byte 4"},
           {"[,{}]", "missing element at byte 1"},
           {"[{},,{}]", "missing element at byte 4"},
           {"[{},]", "missing element at byte 4"},
           {"[{]}", "mismatched bracket at byte 2"},
           {"[[}]", "mismatched bracket at byte 2"},
           {"[}]", "unexpected '}' at byte 1"},
           {"[\"abc]", "unterminated string at byte 1"},
           {"[\"abc\\\"]", "unterminated string at byte 1"},
       }) {
    SCOPED_TRACE(c.text);
    auto r = SplitJsonArray(c.text, 10);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
    EXPECT_EQ(r.error().field, "$");
    EXPECT_EQ(r.error().message,
              std::string("The body is not a JSON array of events: ") + c.message + ".");
  }
}

TEST(SplitJsonArrayTest, StopsAtTheElementLimit) {
  auto r = SplitJsonArray("[1,2,3]", 2);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kResourceExhausted);
  EXPECT_EQ(r.error().message, "A batch holds at most 2 events.");
  // The limit is found before later malformed content.
  auto early = SplitJsonArray("[1,2,3,", 2);
  ASSERT_FALSE(early);
  EXPECT_EQ(early.error().code, ErrorCode::kResourceExhausted);
  EXPECT_TRUE(SplitJsonArray("[1,2]", 2));
}

TEST_F(EventsHandlerTest, Unauthenticated401BeforeEverythingElse) {
  const std::string body = "[" + Event("e1", "ws-a") + "]";
  for (const auto& [token, type] : std::vector<std::pair<std::string, std::string>>{
           {"", kBatch}, {"nope", kBatch}, {"", "text/plain"}, {"nope", ""}}) {
    SCOPED_TRACE(token + " / " + type);
    Response r = Call(token, type, body);
    EXPECT_EQ(r.status, 401);
    EXPECT_EQ(Body(r), kUnauthenticated);
    ASSERT_EQ(r.headers.size(), 1u);
    EXPECT_EQ(r.headers[0].first, "WWW-Authenticate");
  }
  EXPECT_EQ(calls_, 0);
  // The api_key header works too.
  EXPECT_EQ(Call("tok-owner-a", kBatch, body, "api_key").status, 202);
}

TEST_F(EventsHandlerTest, UnsupportedMediaType415) {
  const std::string one = Event("e1", "ws-a");
  for (const std::string type :
       {"", "application/json", "text/plain", "application/cloudevents", "application/x-ndjson",
        "application/cloudevents+json; charset=latin1",
        "application/cloudevents-batch+json;charset=\"iso-8859-1\""}) {
    SCOPED_TRACE(type);
    Response r = Call("tok-owner-a", type, one);
    EXPECT_EQ(r.status, 415);
    EXPECT_EQ(r.content_type, "application/json");
    EXPECT_EQ(Body(r), kUnsupported);
  }
  EXPECT_EQ(calls_, 0);
  // Case-insensitive type, utf-8 charset in any spelling, other parameters ignored.
  for (const std::string type :
       {"Application/CloudEvents+JSON", "application/cloudevents+json; charset=UTF-8",
        " application/cloudevents+json ; charset=\"utf-8\"; foo=bar",
        "application/cloudevents+json;charset=utf8"}) {
    SCOPED_TRACE(type);
    EXPECT_EQ(Call("tok-owner-a", type, one).status, 202);
  }
}

TEST_F(EventsHandlerTest, PayloadTooLarge413) {
  EventsOptions options;
  options.max_body_bytes = 1000;
  options.max_events = 3;
  Build(options);
  std::string big = "[" + Event("e0", "ws-a");
  for (int i = 1; big.size() <= 1000; ++i) big += "," + Event("e" + std::to_string(i), "ws-a");
  big += "]";
  Response r = Call("tok-owner-a", kBatch, big);
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(Body(r), json({{"message", "The request body is larger than 1000 bytes."}}));

  std::string four = "[1,2,3,4]";
  r = Call("tok-owner-a", kBatch, four);
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(Body(r), json({{"message", "A batch holds at most 3 events."}}));

  std::string three =
      "[" + Event("e1", "ws-a") + "," + Event("e2", "ws-a") + "," + Event("e3", "ws-a") + "]";
  EXPECT_EQ(Call("tok-owner-a", kBatch, three).status, 202);
  // A single event is bounded by bytes only.
  EXPECT_EQ(Call("tok-owner-a", kSingle, std::string(1001, ' ')).status, 413);
  EXPECT_EQ(calls_, 1);
}

TEST_F(EventsHandlerTest, MalformedBatch400) {
  for (const std::string body : {"", "{}", "[{}", "[{},]", "null"}) {
    SCOPED_TRACE(body);
    Response r = Call("tok-owner-a", kBatch, body);
    EXPECT_EQ(r.status, 400);
    json b = Body(r);
    ASSERT_TRUE(b.is_object()) << r.body;
    EXPECT_EQ(b["errors"], json::array());
    EXPECT_TRUE(
        b["message"].get<std::string>().starts_with("The body is not a JSON array of events: "))
        << r.body;
    EXPECT_TRUE(b["message"].get<std::string>().ends_with("Nothing was published.")) << r.body;
  }
  EXPECT_EQ(Body(Call("tok-owner-a", kBatch, "[{},")),
            json({{"message",
                   "The body is not a JSON array of events: unterminated array at byte 4. "
                   "Nothing was published."},
                  {"errors", json::array()}}));
  EXPECT_EQ(calls_, 0);
}

TEST_F(EventsHandlerTest, InvalidEvents400ListEveryBadIndexAndPublishNothing) {
  std::string no_user = Event("e2", "ws-a");
  no_user.replace(no_user.find(R"("user":{"id":"u1"},)"), 19, "");
  std::string bad_type = Event("e3", "ws-a");
  bad_type.replace(bad_type.find("agent.executed"), 14, "agent.exploded");
  std::string bad_time = Event("e4", "ws-a");
  bad_time.replace(bad_time.find("2026-02-20T10:00:00Z"), 20, "yesterday");
  const std::string body = "[" + Event("e0", "ws-a") + "," + "42" + "," + no_user + ",\n" +
                           bad_type + "," + bad_time + "," + "{\"specversion\":}" + "," +
                           Event("e6", "ws-a") + "]";
  Response r = Call("tok-owner-a", kBatch, body);
  ASSERT_EQ(r.status, 400) << r.body;
  json b = Body(r);
  EXPECT_EQ(b["message"], "5 events are invalid (of 7 events); nothing was published.");
  ASSERT_EQ(b["errors"].size(), 5u) << r.body;
  std::vector<int> indexes;
  for (const json& e : b["errors"]) {
    indexes.push_back(e["index"].get<int>());
    EXPECT_TRUE(e["reason"].is_string() && !e["reason"].get<std::string>().empty()) << e;
    EXPECT_TRUE(e["field"].is_string()) << e;
    EXPECT_TRUE(e["category"].is_string()) << e;
  }
  EXPECT_EQ(indexes, (std::vector<int>{1, 2, 3, 4, 5}));
  EXPECT_EQ(b["errors"][1], json({{"index", 2},
                                  {"field", "data.user"},
                                  {"reason", "required object is missing"},
                                  {"category", "missing_field"}}))
      << b["errors"][1];
  EXPECT_EQ(b["errors"][0]["category"], "invalid_type");
  EXPECT_EQ(b["errors"][0]["field"], "$");
  EXPECT_EQ(b["errors"][2]["field"], "type");
  EXPECT_EQ(b["errors"][2]["category"], "unknown_type");
  EXPECT_EQ(b["errors"][3]["field"], "time");
  EXPECT_EQ(b["errors"][3]["category"], "bad_time");
  EXPECT_EQ(b["errors"][4]["category"], "invalid_json");
  EXPECT_EQ(calls_, 0);
  EXPECT_EQ(Metric("tally_http_events_rejected_total", {{"reason", "missing_field"}}), 1);
  EXPECT_EQ(Metric("tally_http_events_rejected_total", {{"reason", "bad_time"}}), 1);
  EXPECT_EQ(Metric("tally_http_events_published_total"), 0);

  // A single event: index 0, singular message.
  r = Call("tok-owner-a", kSingle, no_user);
  ASSERT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(Body(r), json({{"message", "1 event is invalid (of 1 event); nothing was published."},
                           {"errors",
                            {{{"index", 0},
                              {"field", "data.user"},
                              {"reason", "required object is missing"},
                              {"category", "missing_field"}}}}}));
  EXPECT_EQ(Call("tok-owner-a", kSingle, "").status, 400);
  EXPECT_EQ(Call("tok-owner-a", kSingle, "[" + Event("e1", "ws-a") + "]").status, 400);
  EXPECT_EQ(calls_, 0);
}

TEST_F(EventsHandlerTest, Forbidden403NamesEveryUnheldIndex) {
  const std::string body = "[" + Event("e0", "ws-b") + "," + Event("e1", "ws-a") + "," +
                           Event("e2", "ws-b") + "," + Event("e3", "ws-c") + "]";
  Response r = Call("tok-owner-b", kBatch, body);
  ASSERT_EQ(r.status, 403) << r.body;
  const json forbidden = {
      {"field", "data.workspace_id"},
      {"reason", "The API key does not hold this workspace; nothing was published."}};
  json e1 = forbidden, e3 = forbidden;
  e1["index"] = 1;
  e3["index"] = 3;
  EXPECT_EQ(Body(r), json({{"message", "This action is unauthorized."}, {"errors", {e1, e3}}}));
  // A key with organizations only holds no workspace.
  r = Call("tok-org", kSingle, Event("e0", "ws-a"));
  EXPECT_EQ(r.status, 403);
  e1["index"] = 0;
  EXPECT_EQ(Body(r), json({{"message", "This action is unauthorized."}, {"errors", {e1}}}));
  EXPECT_EQ(calls_, 0);
  EXPECT_EQ(Metric("tally_http_events_rejected_total", {{"reason", "forbidden"}}), 3);

  // Validation comes first: an invalid event is reported even when another is forbidden.
  r = Call("tok-owner-b", kBatch, "[" + Event("e0", "ws-a") + ",7]");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(Body(r)["errors"].size(), 1u);
  EXPECT_EQ(Body(r)["errors"][0]["index"], 1);

  // Member role, owner role and admin may all write.
  EXPECT_EQ(Call("tok-member-a", kSingle, Event("e0", "ws-a")).status, 202);
  EXPECT_EQ(Call("tok-owner-a", kSingle, Event("e0", "ws-a")).status, 202);
  EXPECT_EQ(Call("tok-admin", kBatch, body).status, 202);
  EXPECT_EQ(calls_, 3);
}

TEST_F(EventsHandlerTest, Accepted202PublishesTheProducersTextWithWorkspaceKeys) {
  // Odd but valid spacing and an escaped workspace id: the text goes out verbatim, the key is the
  // unescaped id.
  const std::string spaced =
      "{ \"specversion\" : \"1.0\", \"id\":\"e1\", \"source\":\"unit/events\",\n"
      "  \"type\":\"workflow.executed\", \"time\":\"2026-02-20T10:00:00+02:00\",\n"
      "  \"data\":{\"workspace_id\":\"ws-\\u0062\",\"user\":{\"id\":\"u1\"},"
      "\"workflow\":{\"id\":\"wf\"},\"duration_ms\":12.5}}";
  const std::string body = "\n[ " + Event("e0", "ws-a") + " ,\r\n\t" + spaced + "  ]\n";
  Response r = Call("tok-admin", kBatch, body);
  ASSERT_EQ(r.status, 202) << r.body;
  EXPECT_EQ(r.content_type, "application/json");
  EXPECT_EQ(Body(r), json({{"accepted", 2}}));
  ASSERT_EQ(published_.size(), 2u);
  EXPECT_EQ(published_[0], std::make_pair(std::string("ws-a"), Event("e0", "ws-a")));
  EXPECT_EQ(published_[1], std::make_pair(std::string("ws-b"), spaced));
  EXPECT_EQ(Metric("tally_http_events_published_total"), 2);

  // Single event: the body (without surrounding whitespace).
  r = Call("tok-owner-a", kSingle, "  " + Event("one", "ws-a") + "\n");
  ASSERT_EQ(r.status, 202) << r.body;
  EXPECT_EQ(Body(r), json({{"accepted", 1}}));
  ASSERT_EQ(published_.size(), 1u);
  EXPECT_EQ(published_[0].second, Event("one", "ws-a"));
  EXPECT_EQ(calls_, 2);

  // An empty batch is accepted without publishing anything.
  r = Call("tok-owner-a", kBatch, "[]");
  EXPECT_EQ(r.status, 202);
  EXPECT_EQ(Body(r), json({{"accepted", 0}}));
  EXPECT_EQ(calls_, 2);
}

TEST_F(EventsHandlerTest, PublishFailure503) {
  fail_ =
      Error{ErrorCode::kUnavailable, "3 of 3 Kafka messages not acknowledged within 10 ms.", ""};
  const std::string body = "[" + Event("e0", "ws-a") + "," + Event("e1", "ws-a") + "]";
  Response r = Call("tok-owner-a", kBatch, body);
  EXPECT_EQ(r.status, 503);
  json b = Body(r);
  ASSERT_TRUE(b.is_object());
  ASSERT_EQ(b.size(), 1u) << r.body;  // no internal details
  EXPECT_EQ(b["message"],
            "The events could not be published (the event log did not acknowledge them in time); "
            "some may have been. Sending the same request again is safe: events are deduplicated "
            "by source and id.");
  ASSERT_EQ(r.headers.size(), 1u);
  EXPECT_EQ(r.headers[0], std::make_pair(std::string("Retry-After"), std::string("1")));
  EXPECT_EQ(calls_, 1);
  EXPECT_EQ(Metric("tally_http_events_publish_failed_total"), 2);
  EXPECT_EQ(Metric("tally_http_events_published_total"), 0);
  // Whatever the backend's code, the client sees a 503 (retry).
  fail_ = Error{ErrorCode::kInvalidArgument, "Kafka rejected the message: too large", ""};
  EXPECT_EQ(Call("tok-owner-a", kBatch, body).status, 503);
  fail_.reset();
  EXPECT_EQ(Call("tok-owner-a", kBatch, body).status, 202);
}

TEST_F(EventsHandlerTest, TooManyConcurrentPublishes503) {
  auto keys = KeyStore::LoadString(KeysToml());
  ASSERT_TRUE(keys);
  std::mutex mu;
  std::condition_variable cv;
  bool entered = false, release = false;
  EventsBackend backend;
  backend.publish = [&](std::span<const EventMessage>) -> Status {
    std::unique_lock lock(mu);
    entered = true;
    cv.notify_all();
    cv.wait(lock, [&] { return release; });
    return Ok();
  };
  EventsOptions options;
  options.max_concurrent_publishes = 1;
  EventsHandler handler(std::make_shared<const KeyStore>(std::move(*keys)), backend, options);
  Request req;
  req.method = "POST";
  req.path = "/v1/events";
  req.headers = {{"Authorization", "Bearer tok-owner-a"}, {"Content-Type", kSingle}};
  req.body = Event("e0", "ws-a");
  auto first = std::async(std::launch::async, [&] { return handler.Handle(req); });
  {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return entered; });
  }
  Response busy = handler.Handle(req);
  EXPECT_EQ(busy.status, 503);
  EXPECT_EQ(Body(busy), json({{"message",
                               "Too many event requests are waiting for the broker; retry "
                               "shortly."}}));
  ASSERT_EQ(busy.headers.size(), 1u);
  EXPECT_EQ(busy.headers[0].first, "Retry-After");
  {
    std::lock_guard lock(mu);
    release = true;
  }
  cv.notify_all();
  EXPECT_EQ(first.get().status, 202);
  // The slot is free again.
  EXPECT_EQ(handler.Handle(req).status, 202);
}

}  // namespace
}  // namespace tally::http

namespace tally::http {
namespace {

TEST_F(EventsHandlerTest, AKeyMustHoldTheOrganizationAnEventNames) {
  // Holding the workspace is not enough to write into an organization's analytics.
  Response r = Call("tok-owner-a", kBatch,
                    "[" + Event("e1", "ws-a") + "," + EventInOrg("e2", "ws-a", "org_3") + "]");
  ASSERT_EQ(r.status, 403) << r.body;
  json b = Body(r);
  ASSERT_EQ(b["errors"].size(), 1u) << r.body;
  EXPECT_EQ(b["errors"][0]["index"], 1);
  EXPECT_EQ(b["errors"][0]["field"], "data.organization_id");
  EXPECT_EQ(calls_, 0);
  // Holding org_7 is not holding org_3; holding both scopes is enough.
  r = Call("tok-a-org7", kSingle, EventInOrg("e3", "ws-a", "org_3"));
  EXPECT_EQ(r.status, 403) << r.body;
  r = Call("tok-a-org7", kSingle, EventInOrg("e4", "ws-a", "org_7"));
  EXPECT_EQ(r.status, 202) << r.body;
  // Admin keys hold every organization.
  r = Call("tok-admin", kSingle, EventInOrg("e5", "ws-a", "org_3"));
  EXPECT_EQ(r.status, 202) << r.body;
  EXPECT_EQ(calls_, 2);
}

TEST_F(EventsHandlerTest, AWorkspaceDeclaredInTheKeysFileTakesOnlyItsOrganization) {
  Response r =
      Call("tok-admin", kBatch,
           "[" + EventInOrg("e1", "ws-bound", "org_5") + "," +
               EventInOrg("e2", "ws-bound", "org_6") + "," + Event("e3", "ws-bound") + "]");
  ASSERT_EQ(r.status, 400) << r.body;
  json b = Body(r);
  ASSERT_EQ(b["errors"].size(), 1u) << r.body;
  EXPECT_EQ(b["errors"][0]["index"], 1);
  EXPECT_EQ(b["errors"][0]["field"], "data.organization_id");
  EXPECT_EQ(b["errors"][0]["category"], "organization_mismatch");
  EXPECT_EQ(calls_, 0);
}

// A key that does not hold a declared workspace gets the same 403 whichever organization its
// event names: the binding is not revealed to it.
TEST_F(EventsHandlerTest, ADeclaredBindingIsNotRevealedToAKeyWithoutTheWorkspace) {
  for (const char* org : {"org_5", "org_6"}) {
    Response r = Call("tok-a-org7", kSingle, EventInOrg("e7", "ws-bound", org));
    EXPECT_EQ(r.status, 403) << org << ": " << r.body;
    EXPECT_EQ(r.body.find("mismatch"), std::string::npos) << r.body;
  }
  EXPECT_EQ(calls_, 0);
}

}  // namespace
}  // namespace tally::http
