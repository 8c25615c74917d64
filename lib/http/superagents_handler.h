#pragma once
// GET /api/v1/monitoring/{workspace_id}/superagents (schemas/openapi.yaml): auth,
// validation, cursor pagination and rendering around an injected query backend.
//
//   tally::http::SuperagentsBackend backend{
//       .run = [&](const tally::query::SuperagentsRequest& r) {
//         return tally::query::OpenSuperagents(store, cache, clock, r);  // a SuperagentsCache
//       },
//       .workspace_known = [&](std::string_view ws) {
//         return tally::query::WorkspaceKnown(store, ws);
//       }};
//   auto handler = std::make_shared<const tally::http::SuperagentsHandler>(keys, backend);
//   router.Add("GET", "/api/v1/monitoring/{workspace_id}/superagents",
//              [handler](const tally::http::Request& r) { return handler->Handle(r); });
//
// Order of checks:
//   401 no/unknown token (Bearer or api_key) ->
//   403 a non-admin key that is not owner/member of the workspace ->
//   404 {"error":"Workspace not found"} when no event and no key names the workspace ->
//   422 validation (superagents_request.h) ->
//   400 {"message":"The cursor is invalid.","errors":{"cursor":[...]}} for a malformed or
//       tampered cursor or one issued for another workspace; 400 {"message":"The cursor has
//       expired; restart from the first page.","errors":{"cursor":[...]}} when its result set
//       is no longer cached ->
//   200 {"superagents":[...],"pagination":{"total","limit","has_more","next_cursor"}}.
//
// Pagination: the first page (no cursor) opens the filtered, sorted listing (rows are built for
// the page only) and, when more pages follow, keeps the listing in a bounded in-memory cache
// under a random result-set id. next_cursor
// = base64url(version, result-set id, next offset, workspace id) + HMAC-SHA256 tag under a
// per-process random key. Pages read with a cursor come from that frozen list, so a walk sees
// every agent exactly once however many events arrive meanwhile; they ignore the request's
// from/to/sort/search/visibility (only `limit` applies; the others are still validated).
// Cursors do not survive a restart.

#include <chrono>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/result.h"
#include "http/auth.h"
#include "http/router.h"
#include "query/superagents.h"

namespace tally::http {

// Where the handler gets its data. Both functions must be set and thread-safe.
struct SuperagentsBackend {
  // Opens the listing of a validated request (immutable; the handler keeps it for the cursor
  // pages). kInvalidArgument -> 422, others per error_mapping.h.
  std::function<Result<std::shared_ptr<const query::SuperagentsListing>>(
      const query::SuperagentsRequest&)>
      run;
  // True if the workspace has been seen in any event.
  std::function<bool(std::string_view)> workspace_known;
  // Optional: where the request is answered (unset: here). Checked before the cursor, so that
  // cursor pages are served by the instance that issued the cursor's first page.
  ScopeRoute route;
};

struct SuperagentsOptions {
  size_t max_result_sets = 256;  // cached result sets; the oldest is evicted beyond this
  std::chrono::milliseconds ttl = std::chrono::minutes(10);
  // Bound on the memory held by all cached sets together (SuperagentsListing::OwnBytes of each,
  // plus each distinct shared table once); the oldest sets are evicted to make room. A single
  // larger set is still cached (alone).
  size_t max_cached_bytes = 256u << 20;
};

class SuperagentsHandler {
 public:
  // `keys` must be non-null.
  SuperagentsHandler(std::shared_ptr<const KeyStore> keys, SuperagentsBackend backend,
                     SuperagentsOptions options = {});

  // Thread-safe. Never throws on bad input (only on allocation failure).
  Response Handle(const Request& request) const;

 private:
  using Listing = std::shared_ptr<const query::SuperagentsListing>;
  struct Entry {
    std::string workspace_id;
    Listing listing;
    std::chrono::steady_clock::time_point expires;
  };

  std::string Remember(const std::string& workspace_id, Listing listing) const;
  // Under mu_: accounts for `listing` entering (+1) or leaving (-1) the cache.
  void Account(const query::SuperagentsListing& listing, int sign) const;
  std::string MakeCursor(std::string_view set_id, uint32_t offset,
                         std::string_view workspace_id) const;

  std::shared_ptr<const KeyStore> keys_;
  SuperagentsBackend backend_;
  SuperagentsOptions options_;
  std::string hmac_key_;  // 32 random bytes, per process

  mutable std::mutex mu_;
  mutable std::unordered_map<std::string, Entry> sets_;     // by raw 16-byte result-set id
  mutable std::list<std::string> order_;                    // insertion order, oldest first
  mutable size_t cached_bytes_ = 0;                         // see max_cached_bytes
  mutable std::unordered_map<const void*, size_t> tables_;  // shared table -> sets using it
};

// base64url without padding (RFC 4648 §5). Pure.
std::string Base64UrlEncode(std::string_view data);
// Inverse of Base64UrlEncode; nullopt on any character outside the alphabet, padding, or an
// impossible length. Pure.
std::optional<std::string> Base64UrlDecode(std::string_view text);

// The 200 body for rows [offset, offset + limit) of `listing` (only those rows are built).
std::string RenderSuperagents(const query::SuperagentsListing& listing, size_t offset, int limit,
                              const std::optional<std::string>& next_cursor);

}  // namespace tally::http
