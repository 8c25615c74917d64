#pragma once
// The HTTP/1.1 server of tally (Boost.Beast, asynchronous, keep-alive). Transport only: every
// request goes to a Router (router.h).
//
//   auto router = std::make_shared<tally::http::Router>(&registry);
//   router->Add("GET", "/healthz", ...);
//   tally::http::ServerOptions opts;
//   opts.port = 0;                                            // ephemeral
//   auto server = tally::http::Server::Start(opts, router);   // Result<unique_ptr<Server>>
//   if (!server) die(server.error().message);
//   std::cout << (*server)->port();
//   (*server)->Stop();                                        // or let the destructor do it
//
// Limits: a body over max_body_bytes gets 413, headers over max_header_bytes get 431, an
// unparsable request 400 (all JSON, then the connection closes). A Transfer-Encoding other than
// a single "chunked" (or with Content-Length, or in HTTP/1.0) gets 400 and the connection
// closes: the bytes after such a header are never read as another request. HEAD is answered as
// the router answers it (router.h: like GET) with the headers only; Content-Length is that of
// the body a GET would get. A request must arrive within
// read_timeout; an idle keep-alive connection is closed after idle_timeout. Beast stays out of
// this header (pimpl) so that only server.cpp pays its compile time.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "common/result.h"
#include "http/router.h"

namespace tally::http {

struct ServerOptions {
  std::string host = "127.0.0.1";  // IP address or resolvable host name
  uint16_t port = 8080;            // 0 = ephemeral (see Server::port())
  int threads = 2;                 // io threads; handlers run on them
  size_t max_body_bytes = 1 << 20;
  size_t max_header_bytes = 16 << 10;
  std::chrono::seconds read_timeout{30};  // to receive one whole request (headers and body)
  std::chrono::seconds idle_timeout{60};  // keep-alive: wait for the next request's first byte
  std::chrono::seconds write_timeout{30};
};

class Server {
 public:
  // Binds, listens and starts the io threads. kInvalidArgument for bad options (threads < 1,
  // unparsable host), kUnavailable when the address cannot be resolved or bound. `router` must
  // be non-null; it is shared by all io threads (Router::Handle is thread-safe).
  static Result<std::unique_ptr<Server>> Start(ServerOptions options,
                                               std::shared_ptr<const Router> router);

  // Stops (see Stop()).
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // The bound port (the real one when options.port was 0).
  uint16_t port() const;

  // Graceful stop: stops accepting, lets requests being handled finish and their responses be
  // written, closes idle connections, then joins the io threads. Idempotent and thread-safe, but
  // must not be called from a handler (it would wait for itself).
  void Stop();

  struct Impl;

 private:
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tally::http
