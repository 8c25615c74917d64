// The HTTP server's lifecycle over real sockets: graceful Stop, connection timeouts, bind errors.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <thread>

#include "http/router.h"
#include "http/server.h"
#include "http/testing/http_client.h"

namespace tally::http {
namespace {

using testing::HttpClient;
using testing::HttpReply;

TEST(ServerLifecycle, StopIsGracefulAndIdempotent) {
  auto router = std::make_shared<Router>();
  router->Add("GET", "/slow", [](const Request&) {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    return JsonResponse(200, R"({"slow":true})");
  });
  ServerOptions options;
  options.port = 0;
  auto server = Server::Start(options, router);
  ASSERT_TRUE(server.has_value()) << server.error().message;
  const uint16_t port = (*server)->port();

  // An idle keep-alive connection must not hold Stop() up.
  auto idle = HttpClient::Connect("127.0.0.1", port);
  ASSERT_TRUE(idle.has_value());
  ASSERT_TRUE(idle->Send("GET", "/nope").has_value());

  Result<HttpReply> slow_reply = Fail(ErrorCode::kInternal, "not run");
  std::thread in_flight([&] { slow_reply = testing::Fetch("127.0.0.1", port, "GET", "/slow"); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const auto start = std::chrono::steady_clock::now();
  (*server)->Stop();
  const auto took = std::chrono::steady_clock::now() - start;
  in_flight.join();
  ASSERT_TRUE(slow_reply.has_value()) << slow_reply.error().message;
  EXPECT_EQ(slow_reply->status, 200);  // the request being handled finished
  EXPECT_FALSE(slow_reply->keep_alive);
  EXPECT_LT(took, std::chrono::seconds(5));
  (*server)->Stop();  // idempotent
  EXPECT_FALSE(testing::Fetch("127.0.0.1", port, "GET", "/slow").has_value());
}

TEST(ServerLifecycle, IdleAndReadTimeoutsCloseConnections) {
  auto router = std::make_shared<Router>();
  router->Add("GET", "/x", [](const Request&) { return JsonResponse(200, "{}"); });
  ServerOptions options;
  options.port = 0;
  options.read_timeout = std::chrono::seconds(1);
  options.idle_timeout = std::chrono::seconds(1);
  auto server = Server::Start(options, router);
  ASSERT_TRUE(server.has_value());
  auto client = HttpClient::Connect("127.0.0.1", (*server)->port());
  ASSERT_TRUE(client.has_value());
  ASSERT_TRUE(client->Send("GET", "/x").has_value());
  std::this_thread::sleep_for(std::chrono::milliseconds(1600));
  EXPECT_FALSE(client->Send("GET", "/x").has_value());  // closed while idle

  // A request that never completes is cut off after read_timeout.
  auto slow = HttpClient::Connect("127.0.0.1", (*server)->port());
  ASSERT_TRUE(slow.has_value());
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(slow->SendRaw("GET /x HTTP/1.1\r\nHost: x\r\n").has_value());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST(ServerLifecycle, BindErrors) {
  auto router = std::make_shared<Router>();
  ServerOptions options;
  options.port = 0;
  auto first = Server::Start(options, router);
  ASSERT_TRUE(first.has_value());
  options.port = (*first)->port();
  auto second = Server::Start(options, router);
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().code, ErrorCode::kUnavailable);
  options.port = 0;
  options.threads = 0;
  EXPECT_EQ(Server::Start(options, router).error().code, ErrorCode::kInvalidArgument);
  options.threads = 1;
  options.host = "no-such-host.invalid";
  EXPECT_FALSE(Server::Start(options, router).has_value());
}

}  // namespace
}  // namespace tally::http
