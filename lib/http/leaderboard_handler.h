#pragma once
// GET /api/agents/leaderboard (schemas/openapi.yaml): auth, validation, workspace
// resolution and rendering around an injected query backend.
//
//   tally::http::LeaderboardBackend backend{
//       .run = [&](const tally::query::LeaderboardRequest& r) {
//         return tally::query::RunLeaderboard(store, clock, r);
//       },
//       .resolve_organization = [&](std::string_view org) {
//         return tally::query::ResolveWorkspaceByOrganization(store, org);
//       },
//       .workspace_known = [&](std::string_view ws) {
//         return tally::query::WorkspaceKnown(store, ws);
//       }};
//   auto handler = std::make_shared<const tally::http::LeaderboardHandler>(keys, backend);
//   router.Add("GET", "/api/agents/leaderboard",
//              [handler](const tally::http::Request& r) { return handler->Handle(r); });
//
// Order of checks:
//   401 no/unknown token (Bearer or api_key) ->
//   422 validation (leaderboard_request.h) ->
//   organization resolution when workspace_uuid is absent: no workspace names it -> 404
//       {"error":"Workspace not found"} for an admin key, 403 otherwise; several do -> 422
//       {"errors":{"organization_multiplai_id":[...]}} for an admin key or a key holding the
//       organization, 403 otherwise (a key learns nothing about organizations it does not hold) ->
//   403 when a non-admin key is not owner/member of the workspace (whether it exists is not
//       revealed) ->
//   404 {"error":"Workspace not found"} when no event and no key names the workspace ->
//   200 {"data":[...]}.

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/result.h"
#include "http/auth.h"
#include "http/router.h"
#include "query/leaderboard.h"

namespace tally::http {

// Where the handler gets its data. All three functions must be set and thread-safe.
struct LeaderboardBackend {
  // Runs a validated request (workspace resolved). kInvalidArgument -> 422, others per
  // error_mapping.h.
  std::function<Result<query::LeaderboardResult>(const query::LeaderboardRequest&)> run;
  // The single workspace whose events name the organization: kNotFound when none,
  // kInvalidArgument (field organization_multiplai_id) when several.
  std::function<Result<std::string>(std::string_view)> resolve_organization;
  // True if the workspace has been seen in any event.
  std::function<bool(std::string_view)> workspace_known;
  // Optional: where the request is answered once its workspace is resolved (unset: here).
  ScopeRoute route;
};

class LeaderboardHandler {
 public:
  // `keys` must be non-null.
  LeaderboardHandler(std::shared_ptr<const KeyStore> keys, LeaderboardBackend backend);

  // Thread-safe. Never throws on bad input (only on allocation failure).
  Response Handle(const Request& request) const;

 private:
  std::shared_ptr<const KeyStore> keys_;
  LeaderboardBackend backend_;
};

// The 200 body: {"data":[{"rank","user":{"id","name","photo"},"agent_count",
// "agent_count_previous_period","growth_percentage"}]}. user.id is a JSON integer when the stored
// id is a canonical decimal integer that fits in int64 ("42", "-7", "0"; not "007", "+1", "-0"),
// else a string; name, photo and growth_percentage are null when unknown. Pure.
std::string RenderLeaderboard(const query::LeaderboardResult& result);

}  // namespace tally::http
