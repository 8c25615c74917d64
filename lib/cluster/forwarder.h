#pragma once
// Answers a request on the instance that owns its scope: one hop over a keep-alive connection
// pool, the caller's own credentials forwarded (the owner authenticates and authorizes the
// request again with the same keys file, so a forwarded request is never open and a key keeps
// exactly its scopes), the owner's response relayed byte for byte.
//
//   tally::cluster::Forwarder forwarder(membership.get(), {}, &registry);
//   if (auto relayed = forwarder.ForWorkspace(request, workspace_id)) return *relayed;
//   ... answer locally ...
//
// A request that arrives forwarded (header kForwardedHeader) and would have to move again gets a
// 503: routes are changing, and one hop is the rule.
//
// Thread-safe.

#include <atomic>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "cluster/membership.h"
#include "cluster/routing_table.h"
#include "common/metrics.h"
#include "http/client.h"
#include "http/router.h"

namespace tally::cluster {

// Set on forwarded requests to the forwarding instance's id.
inline constexpr std::string_view kForwardedHeader = "Tally-Forwarded-By";

struct ForwarderOptions {
  std::string instance_id;                   // this instance, for kForwardedHeader
  std::chrono::milliseconds timeout{10000};  // per forwarded request (connect, send, answer)
  int retry_after_s = 1;                     // Retry-After of the 503s
};

class Forwarder {
 public:
  // `membership` (may be null: then ForWorkspace always answers locally) and `metrics` must
  // outlive the forwarder.
  Forwarder(const Membership* membership, ForwarderOptions options, MetricsRegistry* metrics);

  // nullopt: answer `request` here (this instance serves `workspace`, or nobody has consumed
  // it). Otherwise the response to send: the owner's, relayed, or a 503 with Retry-After saying
  // why nobody can answer now (no owner yet, an owner still restoring, an owner that cannot be
  // reached, a forwarded request that would move again).
  std::optional<http::Response> ForWorkspace(const http::Request& request,
                                             std::string_view workspace);
  // The same for an already computed route.
  std::optional<http::Response> Follow(const http::Request& request, const Route& route);

  // Sends `request` (the caller's headers, kForwardedHeader, then `extra`) to the instance at
  // `url` and returns its reply whatever its status. kInvalidArgument for an unusable URL,
  // kUnavailable when the instance cannot be reached.
  Result<http::HttpReply> Ask(const http::Request& request, const std::string& url,
                              const http::StringPairs& extra);

 private:
  http::Response Unavailable(std::string message) const;
  Result<http::HttpReply> Send(const http::Request& request,
                               const std::pair<std::string, uint16_t>& to,
                               const http::StringPairs& extra);

  const Membership* membership_;
  ForwarderOptions options_;
  http::ClientPool pool_;
  Counter* forwarded_ = nullptr;
  Counter* unavailable_ = nullptr;
  Counter* failed_ = nullptr;
  std::atomic<int64_t> last_warning_s_{0};  // steady clock, seconds: one warning per second
};

// "http://host:port" (a trailing '/' allowed) -> (host, port). kInvalidArgument otherwise.
Result<std::pair<std::string, uint16_t>> ParseBaseUrl(std::string_view url);
// `path` plus `query` percent-encoded (RFC 3986 unreserved characters kept), in order.
std::string BuildTarget(std::string_view path, const http::StringPairs& query);

}  // namespace tally::cluster
