#pragma once
// HTTP routing for tally's API: method + path pattern -> handler, with path parameters and
// per-route Prometheus metrics.
//
//   tally::http::Router router(&registry);
//   router.Add("GET", "/api/v1/monitoring/{workspace_id}/superagents",
//              [](const tally::http::Request& req) {
//                std::string_view ws = req.PathParam("workspace_id");
//                return tally::http::JsonResponse(200, R"({"ok":true})");
//              });
//   tally::http::Response res = router.Handle(request);   // 404/405 JSON when nothing matches
//
// The router is transport-independent (the Beast server in server.h feeds it), so handlers can be
// unit-tested with plain Request values.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/metrics.h"

namespace tally::http {

using StringPairs = std::vector<std::pair<std::string, std::string>>;

// One HTTP request as handlers see it. Plain value type.
struct Request {
  std::string method;   // "GET", "POST", ... as sent (case-sensitive, per RFC 9110)
  std::string path;     // raw path of the target, without the query string (not decoded)
  StringPairs query;    // percent-decoded, '+' as space, in order, repeated keys kept
  StringPairs headers;  // as received; look up with Header()
  std::string body;
  StringPairs path_params;  // filled by Router::Handle, percent-decoded

  // Value of the first header named `name` (ASCII case-insensitive), or nullptr.
  const std::string* FindHeader(std::string_view name) const;
  // Same, "" when absent.
  std::string_view Header(std::string_view name) const;
  // Value of the LAST query parameter named `key` (exact match), or nullptr.
  const std::string* FindQuery(std::string_view key) const;
  // Value of the path parameter `name`, "" when absent.
  std::string_view PathParam(std::string_view name) const;
};

struct Response {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  StringPairs headers;  // extra headers (Content-Type and Content-Length are set by the server)
};

// A JSON response: `body` must already be valid JSON.
Response JsonResponse(int status, std::string body);

// Where a request scoped to one workspace is answered when several instances share the data
// (cluster/forwarder.h): the response to send instead of answering here (the owning instance's,
// relayed, or a 503), or nullopt to answer here. Called after authentication, validation and
// the access checks, so a key learns nothing more through it. Must be thread-safe.
using ScopeRoute =
    std::function<std::optional<Response>(const Request& request, std::string_view workspace)>;

// Splits "a=1&b=x%20y+z&a=2" into decoded pairs (percent escapes, '+' as space; an invalid
// escape is kept literally; a key without '=' gets an empty value; empty segments are skipped).
StringPairs ParseQueryString(std::string_view query);
// Percent-decodes `s`; with plus_as_space, '+' becomes ' '. Invalid escapes are kept literally.
std::string PercentDecode(std::string_view s, bool plus_as_space);
// Percent-encodes every byte of `s` but RFC 3986's unreserved characters; PercentDecode undoes it.
std::string PercentEncode(std::string_view s);
// ASCII case-insensitive equality (header names).
bool EqualsIgnoreCase(std::string_view a, std::string_view b);
// Splits an HTTP request target "/path?query" into the Request's path and query fields.
void SplitTarget(std::string_view target, Request* request);

// Must not throw; an exception escaping a handler is caught by Router::Handle (500).
using Handler = std::function<Response(const Request&)>;

struct RouterOptions {
  // Add a `Server-Timing: app;dur=<ms>` header to every response a handler produced (see
  // Router::Handle). Off by default: it tells any client how long the server worked.
  bool server_timing = false;
};

class Router {
 public:
  // `metrics` may be null (no metrics recorded); otherwise it must outlive the router.
  explicit Router(MetricsRegistry* metrics = nullptr, RouterOptions options = {});
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  // Registers `handler` for `method` on `pattern`. A pattern is an absolute path whose segments
  // are literals or "{name}" (matches one non-empty segment, exposed as a path parameter).
  // Not thread-safe: call only while building, before the router is shared.
  void Add(std::string_view method, std::string_view pattern, Handler handler);

  // Dispatches `request` (fills request.path_params). Unknown path: 404 {"message": ...};
  // known path, other method: 405 with an Allow header (which lists HEAD next to GET). HEAD on a
  // path without a HEAD route runs its GET route's handler (request.method stays "HEAD") and
  // returns that response whole; the transport (server.h) sends its headers, with the
  // Content-Length of the body, and drops the body. The single last-resort catch for
  // request handling lives here: an escaping exception becomes a 500 JSON response. Records
  // tally_http_requests_total{route,method,status} and
  // tally_http_request_duration_seconds{route} with route = the pattern ("unmatched" when no
  // path matched). With RouterOptions::server_timing, when a handler ran, adds a
  // `Server-Timing: app;dur=<ms>` header with the time spent in routing and the handler (not in
  // the network or the server's I/O). Thread-safe after building.
  Response Handle(Request& request) const;

 private:
  struct Route {
    std::string method;
    std::string pattern;
    std::vector<std::string> segments;  // "{name}" for a parameter
    Handler handler;
    Histogram* latency = nullptr;
  };
  bool Match(const Route& route, std::string_view path, StringPairs* params) const;
  void Record(int route_index, std::string_view method, int status, double seconds) const;

  MetricsRegistry* metrics_;
  const RouterOptions options_;
  std::vector<Route> routes_;
  Histogram* unmatched_latency_ = nullptr;
  // Counter pointers by (route, method, status), so the hot path does not build label strings.
  mutable std::shared_mutex counters_mu_;
  mutable std::unordered_map<uint64_t, Counter*> counters_;
};

}  // namespace tally::http
