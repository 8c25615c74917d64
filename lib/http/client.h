#pragma once
// A synchronous HTTP/1.1 client, and a keep-alive connection pool to forward requests between
// service instances. Boost.Beast does the parsing underneath; it stays out of this header.
//
//   // One connection, one thread:
//   auto client = tally::http::HttpClient::Connect("127.0.0.1", 8080);
//   if (!client) return std::unexpected(client.error());        // kUnavailable
//   auto reply = client->Send("POST", "/api/v1/workspaces/metrics", R"({"entity":"agents"})",
//                             {{"Authorization", "Bearer dev-token"}});
//   auto again = client->Send("GET", "/healthz");                // same connection
//
//   // Shared by every thread of a process:
//   tally::http::ClientPool pool(tally::http::ClientPoolOptions{});
//   auto forwarded = pool.Send("10.0.0.7", 8080, "GET", "/healthz", {}, {});
//   if (forwarded && forwarded->status == 200) ...
//
// Nothing here throws: every failure is a Result. Transport failures (resolution, connection,
// reset, timeout, unparsable response) are kUnavailable; an HTTP error status is a reply, not a
// failure.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "http/router.h"

namespace tally::http {

// One HTTP response as received. Plain value type.
struct HttpReply {
  int status = 0;
  std::string body;
  StringPairs headers;      // in order, as received
  bool keep_alive = false;  // whether the server announced it keeps the connection open

  // Value of the first header named `name` (ASCII case-insensitive), "" when absent. The view
  // points into `headers`.
  std::string_view Header(std::string_view name) const;
};

// One HTTP/1.1 connection (keep-alive) to one server.
//
// Timeouts: connecting, and every wait of a Send for the socket (to write more of the request,
// to read more of the response), fail with kUnavailable after `timeout` without progress. Host
// name resolution (getaddrinfo) is not bounded; use an IP address where that matters.
//
// Thread-safety: not thread-safe; use one HttpClient per thread (or ClientPool). Distinct
// clients may be used concurrently. Movable, not copyable; a moved-from client may only be
// destroyed or assigned to. The destructor closes the connection.
class HttpClient {
 public:
  // Connects to `host` (IP address or resolvable name) on `port`, trying each resolved address
  // in turn until `timeout` has passed. kUnavailable when resolution or every connection
  // attempt fails.
  static Result<HttpClient> Connect(const std::string& host, uint16_t port,
                                    std::chrono::milliseconds timeout = std::chrono::seconds(10));
  HttpClient(HttpClient&&) noexcept;
  HttpClient& operator=(HttpClient&&) noexcept;
  ~HttpClient();

  // Sends one request and reads its whole response (bodies up to 64 MiB). A non-empty body gets
  // Content-Type: application/json unless `headers` sets one; Host and Content-Length are set
  // here. The reply to a HEAD request is read without a body (its Content-Length header is
  // kept). kUnavailable on I/O errors (including a connection the server closed), on a timeout
  // and on an unparsable response; the connection is then unusable (further Sends fail).
  // kInvalidArgument, with nothing sent, when the method, the target or a header holds CR, LF
  // or NUL (a space in the method or target, ':' in a header name, an empty name).
  Result<HttpReply> Send(std::string_view method, std::string_view target,
                         std::string_view body = {}, const StringPairs& headers = {});
  // Writes `bytes` verbatim, then reads one response. Errors as Send.
  Result<HttpReply> SendRaw(std::string_view bytes);
  // Port of the client's end of the connection (to tell connections apart), 0 when closed.
  uint16_t local_port() const;

 private:
  friend class ClientPool;
  struct Impl;
  explicit HttpClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// One request on a fresh connection (10 s timeout), closed afterwards. Errors as
// HttpClient::Connect and HttpClient::Send.
Result<HttpReply> Fetch(const std::string& host, uint16_t port, std::string_view method,
                        std::string_view target, std::string_view body = {},
                        const StringPairs& headers = {});

struct ClientPoolOptions {
  // Bounds connecting and every wait for the socket during a request (see HttpClient).
  std::chrono::milliseconds timeout{2000};
  // Idle connections kept per host:port; beyond that the least recently used one is closed.
  size_t max_idle_per_host = 8;
};

// Keep-alive connections to any number of servers, shared by all threads of a process.
//
// Thread-safety: every method is thread-safe. A mutex guards only the idle lists; connecting
// and request I/O run outside it, so concurrent Sends to the same host use distinct
// connections (one is opened when no idle one is left).
//
// The pool owns its connections; destroying it closes the idle ones. It must outlive the Sends
// running on it.
class ClientPool {
 public:
  explicit ClientPool(ClientPoolOptions options = {});
  ~ClientPool();
  ClientPool(const ClientPool&) = delete;
  ClientPool& operator=(const ClientPool&) = delete;

  // Sends one request to host:port (as HttpClient::Send) on an idle connection to that
  // host:port (the most recently used one) or on a new one. The connection goes back to the
  // pool when the reply was keep-alive and nothing failed; otherwise it is closed.
  //
  // When a request on a pooled connection fails with an I/O error before any byte of the reply
  // arrived (typically: the server closed the idle connection), it is sent once more on a new
  // connection; a server that read the request and then closed without answering gets it twice,
  // so forward only requests that are safe to repeat. A timeout is not retried.
  //
  // Errors: kUnavailable when connecting fails, on I/O errors, timeouts and unparsable
  // responses; kInvalidArgument for a malformed request, as HttpClient::Send (nothing sent).
  // HTTP error statuses are replies.
  Result<HttpReply> Send(const std::string& host, uint16_t port, std::string_view method,
                         std::string_view target, std::string_view body,
                         const StringPairs& headers);

  // Connections opened so far (successful connects, retries included).
  size_t connects() const { return connects_.load(std::memory_order_relaxed); }
  // Requests sent so far on a connection taken from the pool (including one found dead and
  // retried on a new connection).
  size_t reuses() const { return reuses_.load(std::memory_order_relaxed); }

 private:
  static std::string Key(const std::string& host, uint16_t port);
  // Takes the most recently used idle connection to `key`, if any.
  std::optional<HttpClient> TakeIdle(const std::string& key);
  // Puts `client` back on `key`'s idle list (closing the oldest one beyond the limit).
  void Release(const std::string& key, HttpClient client);

  const ClientPoolOptions options_;
  std::mutex mu_;
  std::map<std::string, std::vector<HttpClient>> idle_;  // guarded by mu_; oldest first
  std::atomic<size_t> connects_{0};
  std::atomic<size_t> reuses_{0};
};

}  // namespace tally::http
