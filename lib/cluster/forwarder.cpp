#include "cluster/forwarder.h"

#include <spdlog/spdlog.h>

#include <array>

#include "common/parse.h"
#include "http/error_mapping.h"

namespace tally::cluster {
namespace {

// Hop-by-hop headers and those the server sets itself are not relayed.
constexpr std::array<std::string_view, 9> kRequestHeadersDropped = {
    "connection",     "keep-alive", "transfer-encoding", "te", "upgrade", "host",
    "content-length", "expect",     "tally-forwarded-by"};
constexpr std::array<std::string_view, 7> kResponseHeadersDropped = {
    "connection",    "keep-alive", "transfer-encoding", "content-length", "content-type",
    "server-timing", "date"};

template <size_t N>
bool Listed(const std::array<std::string_view, N>& names, std::string_view name) {
  for (std::string_view n : names) {
    if (http::EqualsIgnoreCase(n, name)) return true;
  }
  return false;
}

}  // namespace

Result<std::pair<std::string, uint16_t>> ParseBaseUrl(std::string_view url) {
  constexpr std::string_view kScheme = "http://";
  if (!url.starts_with(kScheme)) {
    return Fail(ErrorCode::kInvalidArgument,
                "the URL must look like http://HOST:PORT, got '" + std::string(url) + "'");
  }
  std::string_view rest = url.substr(kScheme.size());
  if (rest.ends_with('/')) rest.remove_suffix(1);
  auto hp = ParseHostPort(rest, /*allow_zero_port=*/false, "url");
  if (!hp) return std::unexpected(hp.error());
  return std::pair{hp->host, hp->port};
}

std::string BuildTarget(std::string_view path, const http::StringPairs& query) {
  std::string target(path);
  char sep = '?';
  for (const auto& [k, v] : query) {
    target.push_back(sep);
    sep = '&';
    target.append(http::PercentEncode(k));
    target.push_back('=');
    target.append(http::PercentEncode(v));
  }
  return target;
}

Forwarder::Forwarder(const Membership* membership, ForwarderOptions options,
                     MetricsRegistry* metrics)
    : membership_(membership),
      options_(std::move(options)),
      pool_(http::ClientPoolOptions{.timeout = options_.timeout}) {
  forwarded_ = metrics->GetCounter("tally_cluster_forwarded_requests_total",
                                   "Requests answered by the instance owning their scope.");
  unavailable_ = metrics->GetCounter(
      "tally_cluster_unavailable_total",
      "Requests answered 503 because no instance could answer their scope yet.");
  failed_ = metrics->GetCounter("tally_cluster_forward_failures_total",
                                "Forwarded requests whose owner could not be reached.");
}

Result<http::HttpReply> Forwarder::Send(const http::Request& request,
                                        const std::pair<std::string, uint16_t>& to,
                                        const http::StringPairs& extra) {
  http::StringPairs headers;
  headers.reserve(request.headers.size() + extra.size() + 1);
  for (const auto& [k, v] : request.headers) {
    if (!Listed(kRequestHeadersDropped, k)) headers.emplace_back(k, v);
  }
  headers.emplace_back(std::string(kForwardedHeader), options_.instance_id);
  headers.insert(headers.end(), extra.begin(), extra.end());
  // A HEAD request is answered from the owner's GET: the server sizes it from the body.
  std::string_view method = request.method;
  if (method == "HEAD") method = "GET";
  return pool_.Send(to.first, to.second, method, BuildTarget(request.path, request.query),
                    request.body, headers);
}

Result<http::HttpReply> Forwarder::Ask(const http::Request& request, const std::string& url,
                                       const http::StringPairs& extra) {
  auto base = ParseBaseUrl(url);
  if (!base) return std::unexpected(base.error());
  auto reply = Send(request, *base, extra);
  if (!reply) {
    failed_->Add();
    return std::unexpected(reply.error());
  }
  forwarded_->Add();
  return reply;
}

http::Response Forwarder::Unavailable(std::string message) const {
  unavailable_->Add();
  http::Response r = http::ErrorResponse(Error{ErrorCode::kUnavailable, std::move(message), ""});
  r.headers.emplace_back("Retry-After", std::to_string(options_.retry_after_s));
  return r;
}

std::optional<http::Response> Forwarder::ForWorkspace(const http::Request& request,
                                                      std::string_view workspace) {
  if (membership_ == nullptr) return std::nullopt;
  return Follow(request, membership_->RouteWorkspace(workspace));
}

std::optional<http::Response> Forwarder::Follow(const http::Request& request, const Route& route) {
  switch (route.kind) {
    case Route::kLocal:
      return std::nullopt;
    case Route::kUnavailable:
      return Unavailable("This scope is not served right now (" + route.reason +
                         "); retry after the Retry-After delay.");
    case Route::kForward:
      break;
  }
  if (request.FindHeader(kForwardedHeader) != nullptr) {
    return Unavailable(
        "The instances are moving partitions (this request was forwarded to an "
        "instance that no longer serves its scope); retry after the Retry-After "
        "delay.");
  }
  auto base = ParseBaseUrl(route.url);
  if (!base) {
    failed_->Add();
    return Unavailable("The instance serving this scope (" + route.instance_id +
                       ") advertises an unusable URL: " + base.error().message);
  }
  auto reply = Send(request, *base, {});
  if (!reply) {
    failed_->Add();
    // A dead owner fails every request until the group moves its partitions: say so once a
    // second, not once a request (the counter has them all).
    const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                            std::chrono::steady_clock::now().time_since_epoch())
                            .count();
    if (last_warning_s_.exchange(now) != now) {
      spdlog::warn("cluster: forwarding {} {} to {} ({}) failed: {}", request.method, request.path,
                   route.instance_id, route.url, reply.error().message);
    }
    return Unavailable("The instance serving this scope (" + route.instance_id +
                       ") cannot be reached; retry after the Retry-After delay.");
  }
  forwarded_->Add();
  http::Response r;
  r.status = reply->status;
  r.body = std::move(reply->body);
  r.content_type = std::string(reply->Header("Content-Type"));
  for (auto& [k, v] : reply->headers) {
    if (!Listed(kResponseHeadersDropped, k)) r.headers.emplace_back(std::move(k), std::move(v));
  }
  return r;
}

}  // namespace tally::cluster
