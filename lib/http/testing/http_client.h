#pragma once
// A small synchronous HTTP/1.1 client for tests (Boost.Beast underneath, hidden here).
//
//   auto client = tally::http::testing::HttpClient::Connect("127.0.0.1", server->port());
//   auto reply = client->Send("POST", "/api/v1/workspaces/metrics", R"({"entity":"agents"})",
//                             {{"Authorization", "Bearer dev-token"}});
//   EXPECT_EQ(reply->status, 422);
//   auto again = client->Send("GET", "/healthz");          // same connection (keep-alive)
//
// Every socket operation times out after 10 s so a broken server fails a test instead of
// hanging it. Not thread-safe (one client per thread).

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/result.h"
#include "http/router.h"

namespace tally::http::testing {

struct HttpReply {
  int status = 0;
  std::string body;
  StringPairs headers;
  bool keep_alive = false;  // what the server announced
  // First header named `name` (case-insensitive), "" when absent.
  std::string_view Header(std::string_view name) const;
};

class HttpClient {
 public:
  // kUnavailable when the connection fails.
  static Result<HttpClient> Connect(const std::string& host, uint16_t port);
  HttpClient(HttpClient&&) noexcept;
  HttpClient& operator=(HttpClient&&) noexcept;
  ~HttpClient();

  // Sends one request and reads its response. A non-empty body gets
  // Content-Type: application/json unless `headers` sets one. kUnavailable on I/O errors
  // (including a connection the server closed). The reply to a HEAD request is read without a
  // body (its Content-Length header is kept).
  Result<HttpReply> Send(std::string_view method, std::string_view target,
                         std::string_view body = {}, const StringPairs& headers = {});
  // Writes `bytes` verbatim, then reads one response.
  Result<HttpReply> SendRaw(std::string_view bytes);
  // Port of the client's end of the connection (to tell connections apart).
  uint16_t local_port() const;

 private:
  struct Impl;
  explicit HttpClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// One request on a fresh connection.
Result<HttpReply> Fetch(const std::string& host, uint16_t port, std::string_view method,
                        std::string_view target, std::string_view body = {},
                        const StringPairs& headers = {});

}  // namespace tally::http::testing
