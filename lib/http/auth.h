#pragma once
// API keys: the keys file of docs/design.md ("Access") and token authentication.
//
//   tally::Result<tally::http::KeyStore> keys = tally::http::KeyStore::LoadFile("keys.toml");
//   if (!keys) die(keys.error().message);      // names the key entry and the field at fault
//   std::optional<std::string_view> token = tally::http::ExtractToken(request);
//   const tally::http::ApiKey* key = token ? keys->Authenticate(*token) : nullptr;
//   if (!key) return tally::http::UnauthenticatedResponse();
//   if (!key->admin && !key->CanOwn(workspace)) return tally::http::ForbiddenResponse();
//
// Keys file format (TOML; only the SHA-256 of each token is stored):
//
//   [[keys]]
//   name = "acme-dashboard"                    # required, unique
//   sha256 = "9f86d0...0a08"                    # required, 64 hex digits, unique
//   user_id = "42"                              # optional (string or integer)
//   workspaces = { "8360bf61-..." = "owner" }   # optional; "owner" | "member"
//   organizations = ["org_7"]                   # optional
//   admin = false                               # optional; true = every workspace/organization
//
//   [[workspaces]]                              # optional: declared organization bindings
//   id = "8360bf61-..."                         # required workspace id
//   organization = "org_7"                      # required; the workspace's one organization
//
// Unknown fields are rejected (a typo such as `admn = true` must not pass silently). A workspace
// belongs to one organization: ingest binds it with the first accepted event naming both, or up
// front with a [[workspaces]] entry (see organizations()).

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "common/result.h"

namespace tally::http {

struct Request;

enum class Role { kOwner, kMember };

struct ApiKey {
  std::string name;
  std::string sha256;  // lowercase hex of the token's SHA-256
  std::string user_id;
  std::map<std::string, Role, std::less<>> workspaces;  // transparent: lookups by view
  std::vector<std::string> organizations;
  bool admin = false;

  // Role checks on the key's own grants; they do NOT consider `admin` (callers check it).
  bool CanOwn(std::string_view workspace) const;    // role owner
  bool IsMember(std::string_view workspace) const;  // owner or member
  bool HoldsOrganization(std::string_view organization) const;
};

// Immutable set of API keys. Thread-safe (const after loading); cheap to share via shared_ptr.
class KeyStore {
 public:
  KeyStore() = default;  // no keys: every token is rejected

  // Reads and parses the keys file. kNotFound/kUnavailable when the file cannot be read,
  // kInvalidArgument naming the entry ("keys[2] \"acme\": ...") and `field` ("keys[2].sha256")
  // for a malformed file.
  static Result<KeyStore> LoadFile(const std::string& path);
  // Parses keys-file text; errors as LoadFile. `origin` names the source in messages.
  static Result<KeyStore> LoadString(std::string_view text, std::string_view origin = "keys file");

  // The key whose stored hash equals Sha256Hex(token), or nullptr (also for an empty token).
  // Compares against every stored hash in constant time, without early exit, so the time taken
  // does not reveal which (or whether a) key matched. The pointer lives as long as the store.
  const ApiKey* Authenticate(std::string_view token) const;

  // True if any key grants `workspace` (any role). Used to tell a configured but still empty
  // workspace (no events yet) from an unknown one.
  bool AnyKeyNamesWorkspace(std::string_view workspace) const;

  const std::vector<ApiKey>& keys() const { return keys_; }
  // The [[workspaces]] bindings: workspace id -> organization id (one per workspace; a file
  // binding one workspace to two organizations is refused by LoadString).
  const std::map<std::string, std::string, std::less<>>& organizations() const {
    return organizations_;
  }

 private:
  std::vector<ApiKey> keys_;
  std::map<std::string, std::string, std::less<>> organizations_;
  std::unordered_set<std::string> named_workspaces_;
};

// The token of `Authorization: Bearer <token>` (scheme case-insensitive) or, failing that, of an
// `api_key: <token>` header. Surrounding whitespace is trimmed; nullopt when neither carries a
// non-empty token. The view points into `request`.
std::optional<std::string_view> ExtractToken(const Request& request);

}  // namespace tally::http
