#include "cluster/forwarder.h"

#include <gtest/gtest.h>

#include "http/client.h"
#include "http/server.h"

namespace tally::cluster {
namespace {

TEST(ParseBaseUrlTest, AcceptsHttpHostPortOnly) {
  auto ok = ParseBaseUrl("http://127.0.0.1:8080/");
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(ok->first, "127.0.0.1");
  EXPECT_EQ(ok->second, 8080);
  EXPECT_TRUE(ParseBaseUrl("http://[::1]:81"));
  EXPECT_FALSE(ParseBaseUrl("https://host:80"));
  EXPECT_FALSE(ParseBaseUrl("http://host"));
  EXPECT_FALSE(ParseBaseUrl("http://host:0"));
  EXPECT_FALSE(ParseBaseUrl("host:80"));
}

TEST(BuildTargetTest, EncodesEveryQueryParameterInOrder) {
  EXPECT_EQ(BuildTarget("/a/b", {}), "/a/b");
  EXPECT_EQ(BuildTarget("/m", {{"filters[period]", "7d"}, {"q", "a b&c=é"}, {"q", ""}}),
            "/m?filters%5Bperiod%5D=7d&q=a%20b%26c%3D%C3%A9&q=");
  // The server decodes what BuildTarget encoded back to the same pairs.
  EXPECT_EQ(http::ParseQueryString("filters%5Bperiod%5D=7d&q=a%20b%26c%3D%C3%A9&q="),
            (http::StringPairs{{"filters[period]", "7d"}, {"q", "a b&c=é"}, {"q", ""}}));
}

// An "owner" instance that echoes what it received.
class ForwarderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto router = std::make_shared<http::Router>();
    router->Add("GET", "/echo/{x}", [](const http::Request& r) {
      std::string body = r.method + " " + r.path;
      for (const auto& [k, v] : r.query) body += " " + k + "=" + v;
      body += " auth=" + std::string(r.Header("Authorization"));
      body += " by=" + std::string(r.Header(kForwardedHeader));
      body += " body=" + r.body;
      http::Response res;
      res.status = 207;
      res.body = body;
      res.content_type = "text/plain";
      res.headers.emplace_back("X-Owner", "yes");
      return res;
    });
    http::ServerOptions options;
    options.port = 0;
    auto server = http::Server::Start(options, router);
    ASSERT_TRUE(server) << server.error().message;
    owner_ = std::move(*server);
    url_ = "http://127.0.0.1:" + std::to_string(owner_->port());
  }

  static http::Request Incoming(std::string method = "GET") {
    http::Request r;
    r.method = std::move(method);
    r.path = "/echo/1";
    r.query = {{"period", "7 d"}, {"user_id", "u&1"}};
    r.headers = {{"Authorization", "Bearer t"}, {"Host", "front:1"}, {"Connection", "close"}};
    r.body = R"({"x":1})";
    return r;
  }

  MetricsRegistry metrics_;
  std::unique_ptr<http::Server> owner_;
  std::string url_;
};

TEST_F(ForwarderTest, LocalRouteAnswersHere) {
  Forwarder f(nullptr, {.instance_id = "me"}, &metrics_);
  EXPECT_FALSE(f.Follow(Incoming(), Route{}).has_value());
  EXPECT_FALSE(f.ForWorkspace(Incoming(), "ws").has_value());
}

TEST_F(ForwarderTest, RelaysTheOwnersAnswerWithTheCallersCredentials) {
  Forwarder f(nullptr, {.instance_id = "me"}, &metrics_);
  Route route{.kind = Route::kForward, .url = url_, .instance_id = "owner"};
  for (int i = 0; i < 2; ++i) {  // the second one over the pooled connection
    auto r = f.Follow(Incoming(), route);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->status, 207);
    EXPECT_EQ(r->content_type, "text/plain");
    EXPECT_EQ(r->body, R"(GET /echo/1 period=7 d user_id=u&1 auth=Bearer t by=me body={"x":1})");
    bool owner_header = false;
    for (const auto& [k, v] : r->headers) {
      if (k == "X-Owner") owner_header = true;
      EXPECT_NE(k, "Content-Length");
      EXPECT_NE(k, "Server-Timing");
    }
    EXPECT_TRUE(owner_header);
  }
  // HEAD is answered from the owner's GET (the server sizes it from the body).
  auto head = f.Follow(Incoming("HEAD"), route);
  ASSERT_TRUE(head.has_value());
  EXPECT_EQ(head->status, 207);
  EXPECT_NE(head->body.find("GET /echo/1"), std::string::npos);
}

std::string_view RetryAfter(const http::Response& r) {
  for (const auto& [k, v] : r.headers) {
    if (k == "Retry-After") return v;
  }
  return {};
}

TEST_F(ForwarderTest, UnavailableScopesAnswer503WithRetryAfter) {
  Forwarder f(nullptr, {.instance_id = "me", .retry_after_s = 2}, &metrics_);
  auto r = f.Follow(Incoming(),
                    Route{.kind = Route::kUnavailable, .reason = "partition 3 has no owner yet"});
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(RetryAfter(*r), "2");
  EXPECT_NE(r->body.find("partition 3 has no owner yet"), std::string::npos) << r->body;
}

TEST_F(ForwarderTest, ForwardsOneHopOnly) {
  Forwarder f(nullptr, {.instance_id = "me"}, &metrics_);
  http::Request again = Incoming();
  again.headers.emplace_back(std::string(kForwardedHeader), "other");
  auto r = f.Follow(again, Route{.kind = Route::kForward, .url = url_, .instance_id = "owner"});
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(RetryAfter(*r), "1");
}

TEST_F(ForwarderTest, AnUnreachableOwnerIs503) {
  const std::string dead = url_;
  owner_->Stop();
  Forwarder f(nullptr, {.instance_id = "me", .timeout = std::chrono::milliseconds(2000)},
              &metrics_);
  auto r = f.Follow(Incoming(), Route{.kind = Route::kForward, .url = dead, .instance_id = "x"});
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 503);
  EXPECT_NE(r->body.find("cannot be reached"), std::string::npos) << r->body;
  auto bad =
      f.Follow(Incoming(), Route{.kind = Route::kForward, .url = "ftp://x", .instance_id = "y"});
  ASSERT_TRUE(bad.has_value());
  EXPECT_EQ(bad->status, 503);
}

}  // namespace
}  // namespace tally::cluster
