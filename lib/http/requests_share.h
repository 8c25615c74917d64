#pragma once
// The wire form of one instance's share of a request-analytics answer (query::RequestsShare),
// exchanged between the instances of a group: the instance that received a request asks each
// owner of some of the organization's workspaces for its share (the same GET request, with the
// caller's credentials, plus kRequestsShareHeader listing the workspaces), then merges them
// (query::MergeRequests).
//
//   std::string body = tally::http::RenderRequestsShare(share);        // on the owner
//   auto back = tally::http::ParseRequestsShare(body);                  // on the asking instance
//
// Pure functions, thread-safe.

#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "query/requests.h"

namespace tally::http {

// Asks for a share instead of the answer: the workspaces to cover, each percent-encoded,
// separated by commas.
inline constexpr std::string_view kRequestsShareHeader = "Tally-Requests-Share";

// The header value for `workspaces`, and back (kInvalidArgument for a malformed value).
std::string EncodeShareWorkspaces(const std::vector<std::string>& workspaces);
Result<std::vector<std::string>> DecodeShareWorkspaces(std::string_view value);

// A JSON object; every member of the share is written (empty ones included).
std::string RenderRequestsShare(const query::RequestsShare& share);
// kInvalidArgument (naming the member) for anything RenderRequestsShare does not write.
Result<query::RequestsShare> ParseRequestsShare(std::string_view json);

}  // namespace tally::http
