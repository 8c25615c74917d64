// Fuzz target for the HTTP API's parameter and body parsing (lib/http): the query string of
// every endpoint family, the JSON body of workspace metrics, the request-analytics headers and
// the JSON array of POST /v1/events. Whatever a client sends gets a response: validation either
// succeeds or names every offending field; nothing crashes or loops.
//
// The input is split at its first newline: before it, a query string (percent-decoded by the
// router's own decoder); after it, a body. Checks: every validation failure lists at least one
// error and each names its field; parsing twice gives the same outcome; SplitJsonArray's elements
// lie inside the body.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "http/error_mapping.h"
#include "http/events_handler.h"
#include "http/leaderboard_request.h"
#include "http/requests_handler.h"
#include "http/router.h"
#include "http/superagents_request.h"
#include "http/workspace_metrics_request.h"

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

template <typename T>
void CheckErrors(const std::expected<T, tally::http::FieldErrors>& parsed) {
  if (parsed) return;
  Check(!parsed.error().empty());
  for (const auto& e : parsed.error()) Check(!e.field.empty() && !e.message.empty());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tally::http;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t nl = input.find('\n');
  const std::string_view query_text = input.substr(0, nl);
  const std::string_view body = nl == std::string_view::npos ? "" : input.substr(nl + 1);
  const StringPairs query = ParseQueryString(query_text);

  auto metrics = ParseWorkspaceMetricsRequest("", query);
  CheckErrors(metrics);
  auto again = ParseWorkspaceMetricsRequest("", query);
  Check(metrics.has_value() == again.has_value());
  if (metrics) Check(CanonicalCacheKey(*metrics) == CanonicalCacheKey(*again));
  CheckErrors(ParseWorkspaceMetricsRequest(body, {}));
  CheckErrors(ParseLeaderboardRequest(query));
  CheckErrors(ParseSuperagentsRequest(query));

  // Request analytics: the same pairs as query parameters, and as headers.
  Request request;
  request.method = "GET";
  request.path = "/v1/analytics/requests/total-requests";
  request.query = query;
  CheckErrors(ParseRequestsParams(request));
  request.headers = query;
  CheckErrors(ParseRequestsParams(request));

  auto elements = SplitJsonArray(body, 1000);
  if (elements) {
    for (std::string_view e : *elements) {
      Check(e.data() >= body.data() && e.data() + e.size() <= body.data() + body.size());
      Check(!e.empty());
    }
  } else {
    Check(!elements.error().message.empty());
  }
  return 0;
}
