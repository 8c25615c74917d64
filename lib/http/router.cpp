#include "http/router.h"

#include <spdlog/spdlog.h>

#include <array>
#include <cstdio>
#include <exception>

#include "http/error_mapping.h"

namespace tally::http {
namespace {

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Methods get a bounded label set: clients can send any token as a method.
constexpr std::array<std::string_view, 7> kMethods = {"GET",    "POST",    "PUT", "PATCH",
                                                      "DELETE", "OPTIONS", "HEAD"};
int MethodIndex(std::string_view method) {
  for (size_t i = 0; i < kMethods.size(); ++i) {
    if (kMethods[i] == method) return static_cast<int>(i);
  }
  return static_cast<int>(kMethods.size());
}
std::string_view MethodLabel(int index) {
  return index < static_cast<int>(kMethods.size()) ? kMethods[index] : "OTHER";
}

std::vector<std::string> SplitSegments(std::string_view path) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    if (j > i) out.emplace_back(path.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

constexpr const char* kRequestsName = "tally_http_requests_total";
constexpr const char* kRequestsHelp = "HTTP requests by route pattern, method and status.";
constexpr const char* kLatencyName = "tally_http_request_duration_seconds";
constexpr const char* kLatencyHelp = "HTTP request handling time by route pattern.";

}  // namespace

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (Lower(a[i]) != Lower(b[i])) return false;
  }
  return true;
}

std::string PercentEncode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

const std::string* Request::FindHeader(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (EqualsIgnoreCase(k, name)) return &v;
  }
  return nullptr;
}

std::string_view Request::Header(std::string_view name) const {
  const std::string* v = FindHeader(name);
  return v ? std::string_view(*v) : std::string_view();
}

const std::string* Request::FindQuery(std::string_view key) const {
  const std::string* found = nullptr;
  for (const auto& [k, v] : query) {
    if (k == key) found = &v;
  }
  return found;
}

std::string_view Request::PathParam(std::string_view name) const {
  for (const auto& [k, v] : path_params) {
    if (k == name) return v;
  }
  return {};
}

Response JsonResponse(int status, std::string body) {
  Response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

std::string PercentDecode(std::string_view s, bool plus_as_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%' && i + 2 < s.size()) {
      int hi = HexValue(s[i + 1]);
      int lo = HexValue(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(plus_as_space && c == '+' ? ' ' : c);
  }
  return out;
}

StringPairs ParseQueryString(std::string_view query) {
  StringPairs out;
  size_t i = 0;
  while (i <= query.size()) {
    size_t amp = query.find('&', i);
    if (amp == std::string_view::npos) amp = query.size();
    std::string_view part = query.substr(i, amp - i);
    if (!part.empty()) {
      size_t eq = part.find('=');
      if (eq == std::string_view::npos) {
        out.emplace_back(PercentDecode(part, true), std::string());
      } else {
        out.emplace_back(PercentDecode(part.substr(0, eq), true),
                         PercentDecode(part.substr(eq + 1), true));
      }
    }
    i = amp + 1;
  }
  return out;
}

void SplitTarget(std::string_view target, Request* request) {
  size_t q = target.find('?');
  if (q == std::string_view::npos) {
    request->path.assign(target);
    request->query.clear();
  } else {
    request->path.assign(target.substr(0, q));
    request->query = ParseQueryString(target.substr(q + 1));
  }
}

Router::Router(MetricsRegistry* metrics, RouterOptions options)
    : metrics_(metrics), options_(options) {
  if (metrics_) {
    unmatched_latency_ = metrics_->GetHistogram(
        kLatencyName, kLatencyHelp, {{"route", "unmatched"}}, Histogram::LatencyBuckets());
  }
}

void Router::Add(std::string_view method, std::string_view pattern, Handler handler) {
  Route r;
  r.method.assign(method);
  r.pattern.assign(pattern);
  r.segments = SplitSegments(pattern);
  r.handler = std::move(handler);
  if (metrics_) {
    r.latency = metrics_->GetHistogram(kLatencyName, kLatencyHelp, {{"route", r.pattern}},
                                       Histogram::LatencyBuckets());
  }
  routes_.push_back(std::move(r));
}

bool Router::Match(const Route& route, std::string_view path, StringPairs* params) const {
  size_t seg = 0;
  size_t i = 0;
  params->clear();
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    if (j > i) {
      if (seg >= route.segments.size()) return false;
      std::string_view part = path.substr(i, j - i);
      const std::string& want = route.segments[seg];
      if (want.size() >= 2 && want.front() == '{' && want.back() == '}') {
        params->emplace_back(want.substr(1, want.size() - 2), PercentDecode(part, false));
      } else if (want != part) {
        return false;
      }
      ++seg;
    }
    i = j + 1;
  }
  return seg == route.segments.size();
}

void Router::Record(int route_index, std::string_view method, int status, double seconds) const {
  if (!metrics_) return;
  const int method_index = MethodIndex(method);
  const uint64_t key = (static_cast<uint64_t>(route_index + 1) << 32) |
                       (static_cast<uint64_t>(method_index) << 16) |
                       static_cast<uint64_t>(status & 0xffff);
  Counter* counter = nullptr;
  {
    std::shared_lock lock(counters_mu_);
    auto it = counters_.find(key);
    if (it != counters_.end()) counter = it->second;
  }
  if (!counter) {
    const std::string route_label =
        route_index >= 0 ? routes_[route_index].pattern : std::string("unmatched");
    counter = metrics_->GetCounter(kRequestsName, kRequestsHelp,
                                   {{"route", route_label},
                                    {"method", std::string(MethodLabel(method_index))},
                                    {"status", std::to_string(status)}});
    std::unique_lock lock(counters_mu_);
    counters_.emplace(key, counter);
  }
  counter->Add(1);
  Histogram* h = route_index >= 0 ? routes_[route_index].latency : unmatched_latency_;
  if (h) h->Observe(seconds);
}

Response Router::Handle(Request& request) const {
  const auto start = std::chrono::steady_clock::now();
  int route_index = -1;
  Response response;
  StringPairs params;
  StringPairs head_params;
  int head_route = -1;  // the GET route that answers a HEAD request without a HEAD route
  std::string allow;
  const bool head = request.method == "HEAD";
  for (size_t i = 0; i < routes_.size(); ++i) {
    if (!Match(routes_[i], request.path, &params)) continue;
    if (routes_[i].method == request.method) {
      route_index = static_cast<int>(i);
      break;
    }
    if (head && head_route < 0 && routes_[i].method == "GET") {
      head_route = static_cast<int>(i);
      head_params = params;
    }
    if (!allow.empty()) allow += ", ";
    allow += routes_[i].method;
    if (routes_[i].method == "GET") allow += ", HEAD";
    // Remember the first path match (encoded as <= -2) so a 405 is labelled with its pattern.
    if (route_index == -1) route_index = -2 - static_cast<int>(i);
  }
  if (route_index < 0 && head_route >= 0) {
    route_index = head_route;
    params = std::move(head_params);
  }
  const bool handled = route_index >= 0;
  if (handled) {
    request.path_params = std::move(params);
    try {
      response = routes_[route_index].handler(request);
    } catch (const std::exception& e) {
      spdlog::error("http: handler for {} {} threw: {}", request.method,
                    routes_[route_index].pattern, e.what());
      response = InternalErrorResponse();
    } catch (...) {
      spdlog::error("http: handler for {} {} threw a non-standard exception", request.method,
                    routes_[route_index].pattern);
      response = InternalErrorResponse();
    }
  } else if (route_index <= -2) {
    route_index = -2 - route_index;
    response = MethodNotAllowedResponse(allow);
  } else {
    response = RouteNotFoundResponse();
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (handled && options_.server_timing) {
    // Lets clients (the query benchmark, browser dev tools) split server time from network time.
    char timing[48];
    std::snprintf(timing, sizeof timing, "app;dur=%.3f", seconds * 1000.0);
    response.headers.emplace_back("Server-Timing", timing);
  }
  Record(route_index, request.method, response.status, seconds);
  return response;
}

}  // namespace tally::http
