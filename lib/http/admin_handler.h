#pragma once
// Operator endpoints of tallyd (admin keys only):
//   POST /admin/v1/switch   {"db": "db.rebuild-20261122T031500Z"}  -> make a rebuilt store live
//   POST /admin/v1/snapshot {"path": "/backups/tally-1"}           -> RocksDB checkpoint
//
//   tally::http::AdminBackend backend{
//       .switch_db = [&](std::string_view db) { return live->Switch(db); },
//       .snapshot = [&](const std::string& path) { return live->Snapshot(path); }};
//   auto admin = std::make_shared<const tally::http::AdminHandler>(keys, backend);
//   router.Add("POST", "/admin/v1/switch", [admin](auto& r) { return admin->Switch(r); });
//
// Checks: 401 no/unknown token -> 403 not an admin key -> 422 body not a JSON object or the field
// missing / not a string -> backend errors through error_mapping.h (kInvalidArgument 422 naming
// the field, kNotFound 404, kUnavailable / kFailedPrecondition 503) -> 200 {"status":
// "switched"|"created", ...}, or 202 {"status": "catching_up"} when the rebuilt store still has
// to catch up with the live one before queries move to it (ingest already writes into it).

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <variant>

#include "common/result.h"
#include "http/auth.h"
#include "http/router.h"

namespace tally::http {

// Both functions must be set and thread-safe.
struct AdminBackend {
  // true: switched; false: accepted, queries move once the new store has caught up.
  std::function<Result<bool>(std::string_view db)> switch_db;
  std::function<Status(const std::string& path)> snapshot;
};

class AdminHandler {
 public:
  AdminHandler(std::shared_ptr<const KeyStore> keys, AdminBackend backend);
  // Thread-safe; never throws on bad input.
  Response Switch(const Request& request) const;
  Response Snapshot(const Request& request) const;

 private:
  // The admin key's string field `field` of the JSON body, or the error response.
  std::variant<std::string, Response> Field(const Request& request, const char* field) const;
  std::shared_ptr<const KeyStore> keys_;
  AdminBackend backend_;
};

}  // namespace tally::http
