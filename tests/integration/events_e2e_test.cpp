// POST /v1/events on a running tallyd (real broker process, real sockets).
// A batch with bad events is refused whole (400 naming each bad index, nothing published or
// counted); the fixed batch is accepted (202 after the broker's acknowledgement) and counted
// exactly once; the same batch again is accepted and still counted once (dedupe by source and
// id); a single application/cloudevents+json event is counted; each message on the topic is the
// producer's JSON text with key = workspace id. Rejections: 401, 403 (by index), 413 (bytes,
// events), 415, 405; --http-ingest off removes the route.

#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "harness.h"

namespace tally::integration {
namespace {

using nlohmann::json;
using Headers = std::vector<std::pair<std::string, std::string>>;

constexpr const char* kWsA = "8360bf61-4604-4f22-99dc-2afa910fd8c7";
constexpr const char* kWsB = "0d7f4c1e-b0a8-4a55-9d1e-6a2f3c9e7b10";
constexpr const char* kBatchType = "application/cloudevents-batch+json";
constexpr const char* kSingleType = "application/cloudevents+json";

// A valid agent.executed event of `ws`, inside the 30 days ending at Stack::kNow. The spacing is
// the producer's own and must reach the topic unchanged.
std::string Event(const std::string& id, const std::string& ws, int day = 20) {
  return "{\"specversion\": \"1.0\", \"id\": \"" + id +
         "\", \"source\": \"it/events\", \"type\": \"agent.executed\", \"time\": \"2026-02-" +
         std::to_string(day) + "T10:00:00Z\", \"data\": {\"workspace_id\": \"" + ws +
         "\", \"user\": {\"id\": \"u" + std::to_string(day % 3) +
         "\"}, \"agent\": {\"id\": \"agent-1\"}, \"tokens\": 12}}";
}

std::string Batch(const std::vector<std::string>& events) {
  std::string out = "[\n";
  for (size_t i = 0; i < events.size(); ++i) out += (i ? ",\n  " : "  ") + events[i];
  return out + "\n]";
}

Headers Auth(const std::string& token, const std::string& type) {
  return {{"Authorization", "Bearer " + token}, {"Content-Type", type}};
}

class EventsE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    KeySpec owner_a;
    owner_a.name = "owner-a";
    owner_a.token = "tok-owner-a";
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
  }

  HttpResponse Post(const Headers& headers, const std::string& body) {
    Result<HttpResponse> r = stack_.http().Send("POST", "/v1/events", headers, body);
    EXPECT_TRUE(r) << r.error().message;
    if (!r) return {};
    EXPECT_NE(r->Header("content-type").find("application/json"), std::string::npos)
        << r->Header("content-type");
    return *r;
  }

  // Agent executions of `ws` over the last 30 days, via the workspace-metrics API.
  double Executions(const std::string& ws, const std::string& token) {
    json q = {{"workspace_uuid", ws},
              {"entity", "agents"},
              {"metric", "executions"},
              {"aggregation", "count"},
              {"filters", {{"period", "30d"}}}};
    Result<HttpResponse> r = stack_.http().Send("POST", "/api/v1/workspaces/metrics",
                                                {{"Authorization", "Bearer " + token}}, q.dump());
    EXPECT_TRUE(r) << r.error().message;
    if (!r) return -1;
    EXPECT_EQ(r->status, 200) << r->body;
    json b = json::parse(r->body, nullptr, false);
    if (!b.is_object() || !b["data"]["total"].is_number()) {
      ADD_FAILURE() << r->body;
      return -1;
    }
    return b["data"]["total"].get<double>();
  }

  std::vector<ConsumedMessage> Topic() {
    auto msgs = ReadTopic(stack_.bootstrap(), Stack::kTopic, Millis(20000));
    EXPECT_TRUE(msgs) << msgs.error().message;
    return msgs ? *msgs : std::vector<ConsumedMessage>{};
  }

  Stack stack_;
};

TEST_F(EventsE2E, AllOrNothingThenExactlyOnce) {
  ASSERT_TRUE(stack_.StartTallyd());
  ASSERT_TRUE(stack_.WaitForCatchUp(Millis(60000)));

  std::vector<std::string> good;
  for (int i = 0; i < 6; ++i) good.push_back(Event("evt-" + std::to_string(i), kWsA, 20 + i));
  std::vector<std::string> bad = good;
  bad[1] = Event("evt-1", kWsA, 21);
  bad[1].replace(bad[1].find("\"user\": {\"id\": \"u0\"}, "), 22, "");  // no data.user
  bad[3].replace(bad[3].find("agent.executed"), 14, "agent.exploded");
  bad[4].replace(bad[4].find("2026-02-24T10:00:00Z"), 20, "2026-02-30T10:00:00Z");

  // 1. Good and bad events: 400 naming each bad one, nothing published, nothing counted.
  HttpResponse r = Post(Auth("tok-owner-a", kBatchType), Batch(bad));
  ASSERT_EQ(r.status, 400) << r.body;
  json body = json::parse(r.body, nullptr, false);
  EXPECT_EQ(body["message"], "3 events are invalid (of 6 events); nothing was published.");
  ASSERT_EQ(body["errors"].size(), 3u) << r.body;
  EXPECT_EQ(body["errors"][0], json({{"index", 1},
                                     {"field", "data.user"},
                                     {"reason", "required object is missing"},
                                     {"category", "missing_field"}}));
  EXPECT_EQ(body["errors"][1]["index"], 3);
  EXPECT_EQ(body["errors"][1]["field"], "type");
  EXPECT_EQ(body["errors"][1]["category"], "unknown_type");
  EXPECT_EQ(body["errors"][2]["index"], 4);
  EXPECT_EQ(body["errors"][2]["field"], "time");
  EXPECT_EQ(body["errors"][2]["category"], "bad_time");
  EXPECT_TRUE(Topic().empty()) << "a refused batch published something";
  ASSERT_TRUE(stack_.WaitForCatchUp(Millis(60000)));
  EXPECT_EQ(Executions(kWsA, "tok-owner-a"), 0);

  // 2. The fixed batch: 202 once acknowledged; counted once after catch-up; the topic holds the
  // producer's exact texts, keyed by workspace.
  r = Post(Auth("tok-owner-a", kBatchType), Batch(good));
  ASSERT_EQ(r.status, 202) << r.body;
  EXPECT_EQ(json::parse(r.body, nullptr, false), json({{"accepted", 6}}));
  std::vector<ConsumedMessage> msgs = Topic();
  ASSERT_EQ(msgs.size(), 6u) << "202 must mean acknowledged by the broker";
  std::multiset<std::string> sent(good.begin(), good.end()), got;
  for (const ConsumedMessage& m : msgs) {
    got.insert(m.value);
    EXPECT_EQ(m.key, kWsA);
  }
  EXPECT_EQ(got, sent);
  ASSERT_TRUE(stack_.WaitForCatchUp(Millis(60000)));
  EXPECT_EQ(Executions(kWsA, "tok-owner-a"), 6);

  // 3. The same batch again (a client retry): accepted, published again, counted once.
  r = Post({{"api_key", "tok-owner-a"}, {"Content-Type", kBatchType}}, Batch(good));
  ASSERT_EQ(r.status, 202) << r.body;
  EXPECT_EQ(json::parse(r.body, nullptr, false), json({{"accepted", 6}}));
  EXPECT_EQ(Topic().size(), 12u);
  ASSERT_TRUE(stack_.WaitForCatchUp(Millis(60000)));
  EXPECT_EQ(Executions(kWsA, "tok-owner-a"), 6);

  // 4. One event as application/cloudevents+json, by a member of the workspace.
  const std::string single = Event("evt-single", kWsA, 27);
  r = Post(Auth("tok-member-a", std::string(kSingleType) + "; charset=utf-8"), single);
  ASSERT_EQ(r.status, 202) << r.body;
  EXPECT_EQ(json::parse(r.body, nullptr, false), json({{"accepted", 1}}));
  ASSERT_TRUE(stack_.WaitForCatchUp(Millis(60000)));
  EXPECT_EQ(Executions(kWsA, "tok-owner-a"), 7);

  // 5. An admin batch over two workspaces: each message keyed by its own workspace.
  r = Post(Auth("tok-admin", kBatchType),
           Batch({Event("evt-b1", kWsB, 10), Event("evt-a7", kWsA, 11), Event("evt-b2", kWsB)}));
  ASSERT_EQ(r.status, 202) << r.body;
  ASSERT_TRUE(stack_.WaitForCatchUp(Millis(60000)));
  EXPECT_EQ(Executions(kWsA, "tok-owner-a"), 8);
  EXPECT_EQ(Executions(kWsB, "tok-owner-b"), 2);
  msgs = Topic();
  ASSERT_EQ(msgs.size(), 16u);
  for (const ConsumedMessage& m : msgs) {
    EXPECT_NE(m.value.find(std::string("\"workspace_id\": \"") + m.key + "\""), std::string::npos)
        << m.key << " " << m.value;
  }
  EXPECT_EQ(MetricSum(stack_.MetricsText(), "tally_http_events_published_total"), 16);
  EXPECT_EQ(MetricSum(stack_.MetricsText(), "tally_http_requests_total",
                      {"route=\"/v1/events\"", "status=\"202\""}),
            4);
}

TEST_F(EventsE2E, RejectionsPublishNothing) {
  ASSERT_TRUE(
      stack_.StartTallyd({"--http-ingest-max-bytes", "100000", "--http-ingest-max-events", "50"}));
  const std::string one = Event("evt-0", kWsA);
  const std::string batch = Batch({Event("evt-1", kWsB), Event("evt-2", kWsA)});
  const json unauthenticated = {{"message", "Unauthenticated."}};

  // 401: no key, an unknown key (before the content type is even looked at).
  HttpResponse r = Post({{"Content-Type", kBatchType}}, batch);
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(json::parse(r.body, nullptr, false), unauthenticated);
  EXPECT_EQ(r.Header("www-authenticate").rfind("Bearer", 0), 0u);
  r = Post(Auth("not-a-token", "text/plain"), batch);
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(json::parse(r.body, nullptr, false), unauthenticated);

  // 415: JSON that is not announced as CloudEvents.
  r = Post(Auth("tok-owner-a", "application/json"), one);
  EXPECT_EQ(r.status, 415);
  EXPECT_EQ(
      json::parse(r.body, nullptr, false),
      json({{"message",
             "Unsupported Content-Type; send application/cloudevents+json or "
             "application/cloudevents-batch+json."},
            {"accepted", {"application/cloudevents+json", "application/cloudevents-batch+json"}}}));

  // 403: the key does not hold the workspace of event 1 (all or nothing).
  r = Post(Auth("tok-owner-b", kBatchType), batch);
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(
      json::parse(r.body, nullptr, false),
      json({{"message", "This action is unauthorized."},
            {"errors",
             {{{"index", 1},
               {"field", "data.workspace_id"},
               {"reason", "The API key does not hold this workspace; nothing was published."}}}}}));
  r = Post(Auth("tok-owner-b", kSingleType), one);
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(json::parse(r.body, nullptr, false)["errors"][0]["index"], 0);

  // 413: over --http-ingest-max-bytes; over --http-ingest-max-events.
  std::vector<std::string> many;
  for (int i = 0; Batch(many).size() <= 100000; ++i) {
    many.push_back(Event("big-" + std::to_string(i), kWsA));
  }
  r = Post(Auth("tok-owner-a", kBatchType), Batch(many));
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(json::parse(r.body, nullptr, false),
            json({{"message", "The request body is larger than 100000 bytes."}}));
  many.resize(51);
  r = Post(Auth("tok-owner-a", kBatchType), Batch(many));
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(json::parse(r.body, nullptr, false),
            json({{"message", "A batch holds at most 50 events."}}));

  // 400: not a JSON array.
  r = Post(Auth("tok-owner-a", kBatchType), one);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(json::parse(r.body, nullptr, false),
            json({{"message",
                   "The body is not a JSON array of events: expected '[' at byte 0. Nothing was "
                   "published."},
                  {"errors", json::array()}}));

  // 405: another method on the route.
  Result<HttpResponse> get = stack_.http().Send("GET", "/v1/events", {{"api_key", "tok-admin"}});
  ASSERT_TRUE(get);
  EXPECT_EQ(get->status, 405);

  EXPECT_TRUE(Topic().empty()) << "a refused request published something";
  EXPECT_EQ(
      MetricSum(stack_.MetricsText(), "tally_http_events_rejected_total", {"reason=\"forbidden\""}),
      2);

  // The limits hold exactly at the edge: 50 events are fine.
  many.resize(50);
  r = Post(Auth("tok-owner-a", kBatchType), Batch(many));
  EXPECT_EQ(r.status, 202) << r.body;
  EXPECT_EQ(Topic().size(), 50u);

  // --http-ingest off: no route.
  stack_.StopTallyd(SIGTERM);
  ASSERT_TRUE(stack_.StartTallyd({"--http-ingest", "off"}));
  r = Post(Auth("tok-owner-a", kSingleType), one);
  EXPECT_EQ(r.status, 404) << r.body;
}

TEST_F(EventsE2E, BrokerDown503WithinTheAckTimeout) {
  ASSERT_TRUE(stack_.StartTallyd({"--http-ingest-timeout-ms", "1500"}));
  HttpResponse r = Post(Auth("tok-owner-a", kSingleType), Event("up", kWsA));
  ASSERT_EQ(r.status, 202) << r.body;

  stack_.broker().Stop(SIGKILL);
  auto start = std::chrono::steady_clock::now();
  r = Post(Auth("tok-owner-a", kBatchType), Batch({Event("down-1", kWsA), Event("down-2", kWsA)}));
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_EQ(r.Header("retry-after"), "1");
  json body = json::parse(r.body, nullptr, false);
  ASSERT_TRUE(body.is_object()) << r.body;
  EXPECT_EQ(body.size(), 1u) << "no internal details: " << r.body;
  EXPECT_NE(body["message"].get<std::string>().find("Sending the same request again is safe"),
            std::string::npos)
      << r.body;
  EXPECT_GE(took, Millis(1500));
  EXPECT_LT(took, Millis(8000));
  EXPECT_EQ(MetricSum(stack_.MetricsText(), "tally_http_events_publish_failed_total"), 2);
}

}  // namespace
}  // namespace tally::integration
