#pragma once
// GET /v1/analytics/requests/{metric} (schemas/openapi.yaml): the eleven
// request-analytics endpoints. Auth, parameter and header validation, scope resolution and
// rendering around an injected query backend.
//
//   tally::http::RequestsBackend backend{
//       .run = [&](tally::query::RequestsMetric m, const tally::query::RequestsQuery& q) {
//         return tally::query::RunRequests(store, directory, m, q);
//       },
//       .organization_known = [&](std::string_view org) {
//         return tally::query::OrganizationHasRequests(store, org);
//       },
//       .all_organizations = [&] { return tally::query::RequestOrganizations(store); }};
//   auto handler = std::make_shared<const tally::http::RequestsHandler>(keys, backend);
//   router.Add("GET", "/v1/analytics/requests/{metric}",
//              [handler](const tally::http::Request& r) { return handler->Handle(r); });
//
// Order of checks:
//   404 unknown metric name ->
//   401 no/unknown token (Bearer or api_key) ->
//   422 {"message", "errors": {param: [..]}} for startDate / endDate (required, YYYY-MM-DD,
//       start <= end, at most query::kRequestsMaxDays days), agentName (at most 256 bytes),
//       and conflicting header spellings (organization-id vs OrganizationId, project-id vs
//       ProjectId) ->
//   403 a non-admin key without organizations, or an organization header the key does not hold
//   404 {"message": "Organization not found.", "field": "organization-id"} when an admin key
//       names an organization without any request data ->
//   200 with the contract's body for the metric.
// Scope: the organization header's organization, else every organization of the key (an admin
// key: every organization with data); the project header narrows to that project. Empty header
// values and an empty agentName count as absent.

#include <expected>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "http/auth.h"
#include "http/error_mapping.h"
#include "http/router.h"
#include "query/requests.h"

namespace tally::http {

// Where the handler gets its data. All functions must be set and thread-safe.
struct RequestsBackend {
  std::function<Result<query::RequestsResult>(query::RequestsMetric, const query::RequestsQuery&)>
      run;
  std::function<bool(std::string_view)> organization_known;
  std::function<std::vector<std::string>()> all_organizations;
  // A group of instances (lib/cluster), both optional. `gather`, when set, answers instead of
  // `run`: locally or by merging the shares of the instances that own the organizations'
  // workspaces (the request is what the caller sent: it is re-sent to them). `collect` answers
  // a request carrying kRequestsShareHeader (requests_share.h) with this instance's share of the
  // listed workspaces. Errors as `run`'s; kUnavailable becomes a 503 with Retry-After.
  std::function<Result<query::RequestsResult>(const Request& request, query::RequestsMetric,
                                              const query::RequestsQuery&)>
      gather;
  std::function<Result<query::RequestsShare>(query::RequestsMetric, const query::RequestsQuery&,
                                             const std::vector<std::string>& workspaces)>
      collect;
};

class RequestsHandler {
 public:
  // `keys` must be non-null.
  RequestsHandler(std::shared_ptr<const KeyStore> keys, RequestsBackend backend);
  // Thread-safe. Never throws on bad input.
  Response Handle(const Request& request) const;

 private:
  std::shared_ptr<const KeyStore> keys_;
  RequestsBackend backend_;
};

// The validated parameters and headers of a request (scope not yet resolved).
struct RequestsParams {
  query::RequestsQuery query;               // organizations empty; dates, agent_name, project_id
  std::optional<std::string> organization;  // from organization-id / OrganizationId
};
// Validates startDate, endDate, agentName and the scope headers. On failure the errors name
// each offending parameter (or header). Pure.
std::expected<RequestsParams, FieldErrors> ParseRequestsParams(const Request& request);

// The 200 body of `metric` (field names as in the contract). Pure.
std::string RenderRequests(query::RequestsMetric metric, const query::RequestsResult& result);

}  // namespace tally::http
