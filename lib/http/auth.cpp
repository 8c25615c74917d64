#include "http/auth.h"

#include <toml++/toml.h>

#include <fstream>
#include <sstream>

#include "common/sha256.h"
#include "common/strings.h"
#include "http/router.h"

namespace tally::http {
namespace {

bool IsHex64(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    const bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    if (!hex) return false;
  }
  return true;
}

// Builds the error of one key entry: `origin: keys[3] "name": <what>` with field keys[3].<f>.
std::unexpected<Error> EntryError(std::string_view origin, size_t index, std::string_view name,
                                  std::string_view field, std::string_view what) {
  std::string where = "keys[" + std::to_string(index) + "]";
  std::string message = std::string(origin) + ": " + where;
  if (!name.empty()) message += " \"" + std::string(name) + "\"";
  message += ": ";
  message += what;
  std::string f = where;
  if (!field.empty()) f += "." + std::string(field);
  return Fail(ErrorCode::kInvalidArgument, std::move(message), std::move(f));
}

Result<ApiKey> ParseEntry(const toml::table& t, size_t index, std::string_view origin) {
  ApiKey key;
  // The name first, so later errors can quote it.
  if (const toml::node* n = t.get("name")) {
    const auto* s = n->as_string();
    if (!s || s->get().empty()) {
      return EntryError(origin, index, "", "name", "name must be a non-empty string");
    }
    key.name = s->get();
  } else {
    return EntryError(origin, index, "", "name", "name is required");
  }
  const std::string& name = key.name;
  for (auto&& [k, v] : t) {
    const std::string_view field = k.str();
    if (field == "name") continue;
    if (field == "sha256") {
      const auto* s = v.as_string();
      if (!s || !IsHex64(s->get())) {
        return EntryError(origin, index, name, field,
                          "sha256 must be 64 hexadecimal characters (the SHA-256 of the token)");
      }
      key.sha256 = AsciiLower(s->get());
    } else if (field == "user_id") {
      if (const auto* s = v.as_string()) {
        key.user_id = s->get();
      } else if (const auto* i = v.as_integer()) {
        key.user_id = std::to_string(i->get());
      } else {
        return EntryError(origin, index, name, field, "user_id must be a string or an integer");
      }
    } else if (field == "workspaces") {
      const auto* ws = v.as_table();
      if (!ws) {
        return EntryError(origin, index, name, field,
                          "workspaces must be a table of workspace id = \"owner\" | \"member\"");
      }
      for (auto&& [wk, wv] : *ws) {
        const auto* role = wv.as_string();
        std::string f = "workspaces." + std::string(wk.str());
        if (!role || (role->get() != "owner" && role->get() != "member")) {
          return EntryError(origin, index, name, f,
                            "the role of workspace \"" + std::string(wk.str()) +
                                "\" must be \"owner\" or \"member\"");
        }
        if (wk.str().empty()) {
          return EntryError(origin, index, name, f, "a workspace id must not be empty");
        }
        key.workspaces.emplace(std::string(wk.str()),
                               role->get() == "owner" ? Role::kOwner : Role::kMember);
      }
    } else if (field == "organizations") {
      const auto* orgs = v.as_array();
      if (!orgs) {
        return EntryError(origin, index, name, field, "organizations must be an array of strings");
      }
      for (const toml::node& o : *orgs) {
        const auto* s = o.as_string();
        if (!s || s->get().empty()) {
          return EntryError(origin, index, name, field,
                            "organizations must contain only non-empty strings");
        }
        key.organizations.push_back(s->get());
      }
    } else if (field == "admin") {
      const auto* b = v.as_boolean();
      if (!b) return EntryError(origin, index, name, field, "admin must be true or false");
      key.admin = b->get();
    } else {
      return EntryError(origin, index, name, field,
                        "unknown field \"" + std::string(field) +
                            "\" (expected name, sha256, user_id, workspaces, organizations, "
                            "admin)");
    }
  }
  if (key.sha256.empty()) return EntryError(origin, index, name, "sha256", "sha256 is required");
  return key;
}

}  // namespace

bool ApiKey::CanOwn(std::string_view workspace) const {
  auto it = workspaces.find(workspace);
  return it != workspaces.end() && it->second == Role::kOwner;
}

bool ApiKey::IsMember(std::string_view workspace) const {
  return workspaces.find(workspace) != workspaces.end();
}

bool ApiKey::HoldsOrganization(std::string_view organization) const {
  for (const std::string& o : organizations) {
    if (o == organization) return true;
  }
  return false;
}

Result<KeyStore> KeyStore::LoadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Fail(ErrorCode::kNotFound, "cannot open keys file " + path, "keys");
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    return Fail(ErrorCode::kUnavailable, "cannot read keys file " + path, "keys");
  }
  return LoadString(text.str(), path);
}

Result<KeyStore> KeyStore::LoadString(std::string_view text, std::string_view origin) {
  toml::table root;
  // toml++ reports syntax errors by exception; this is the boundary where they become Results.
  try {
    root = toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    const auto& begin = e.source().begin;
    return Fail(ErrorCode::kInvalidArgument,
                std::string(origin) + ":" + std::to_string(begin.line) + ":" +
                    std::to_string(begin.column) + ": " + std::string(e.description()));
  }
  KeyStore store;
  for (auto&& [k, v] : root) {
    if (k.str() != "keys" && k.str() != "workspaces") {
      return Fail(ErrorCode::kInvalidArgument,
                  std::string(origin) + ": unknown top-level entry \"" + std::string(k.str()) +
                      "\" (expected [[keys]] and [[workspaces]] tables)",
                  std::string(k.str()));
    }
  }
  if (const toml::node* bindings = root.get("workspaces")) {
    auto fail = [&](size_t i, std::string_view field, const std::string& what) {
      std::string path = "workspaces[" + std::to_string(i) + "]";
      if (!field.empty()) path += "." + std::string(field);
      return Fail(ErrorCode::kInvalidArgument, std::string(origin) + ": " + path + ": " + what,
                  path);
    };
    const auto* arr = bindings->as_array();
    if (!arr) {
      return Fail(
          ErrorCode::kInvalidArgument,
          std::string(origin) + ": \"workspaces\" must be an array of tables ([[workspaces]])",
          "workspaces");
    }
    for (size_t i = 0; i < arr->size(); ++i) {
      const auto* t = (*arr)[i].as_table();
      if (!t) return fail(i, "", "each entry must be a table ([[workspaces]])");
      for (auto&& [k, v] : *t) {
        if (k.str() != "id" && k.str() != "organization") {
          return fail(i, k.str(), "unknown field (expected id and organization)");
        }
      }
      const auto* id = t->get_as<std::string>("id");
      const auto* org = t->get_as<std::string>("organization");
      if (id == nullptr || id->get().empty()) {
        return fail(i, "id", "required non-empty string (a workspace id)");
      }
      if (org == nullptr || org->get().empty()) {
        return fail(i, "organization", "required non-empty string (an organization id)");
      }
      auto [it, inserted] = store.organizations_.try_emplace(id->get(), org->get());
      if (!inserted && it->second != org->get()) {
        return fail(i, "organization",
                    "workspace \"" + id->get() + "\" is already bound to organization \"" +
                        it->second + "\"");
      }
    }
  }
  if (const toml::node* keys = root.get("keys")) {
    const auto* arr = keys->as_array();
    if (!arr) {
      return Fail(ErrorCode::kInvalidArgument,
                  std::string(origin) + ": \"keys\" must be an array of tables ([[keys]])", "keys");
    }
    for (size_t i = 0; i < arr->size(); ++i) {
      const auto* t = (*arr)[i].as_table();
      if (!t) {
        return EntryError(origin, i, "", "", "each entry of keys must be a table ([[keys]])");
      }
      Result<ApiKey> key = ParseEntry(*t, i, origin);
      if (!key) return std::unexpected(std::move(key.error()));
      for (const ApiKey& other : store.keys_) {
        if (other.name == key->name) {
          return EntryError(origin, i, key->name, "name", "duplicate key name");
        }
        if (other.sha256 == key->sha256) {
          return EntryError(origin, i, key->name, "sha256",
                            "same sha256 as key \"" + other.name + "\"");
        }
      }
      for (const auto& [ws, role] : key->workspaces) store.named_workspaces_.insert(ws);
      store.keys_.push_back(std::move(*key));
    }
  }
  return store;
}

const ApiKey* KeyStore::Authenticate(std::string_view token) const {
  if (token.empty()) return nullptr;
  const std::string digest = Sha256Hex(token);
  const ApiKey* found = nullptr;
  for (const ApiKey& key : keys_) {
    // No early exit: every stored hash is compared, whatever matched before.
    const bool equal = ConstantTimeEquals(digest, key.sha256);
    found = equal ? &key : found;
  }
  return found;
}

bool KeyStore::AnyKeyNamesWorkspace(std::string_view workspace) const {
  return named_workspaces_.find(std::string(workspace)) != named_workspaces_.end();
}

std::optional<std::string_view> ExtractToken(const Request& request) {
  if (const std::string* auth = request.FindHeader("authorization")) {
    std::string_view v = TrimBlanks(*auth);
    constexpr std::string_view kBearer = "bearer";
    if (v.size() > kBearer.size() && (v[kBearer.size()] == ' ' || v[kBearer.size()] == '\t')) {
      bool scheme_ok = true;
      for (size_t i = 0; i < kBearer.size(); ++i) {
        char c = v[i];
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
        if (c != kBearer[i]) scheme_ok = false;
      }
      if (scheme_ok) {
        std::string_view token = TrimBlanks(v.substr(kBearer.size()));
        if (!token.empty()) return token;
      }
    }
  }
  if (const std::string* api_key = request.FindHeader("api_key")) {
    std::string_view token = TrimBlanks(*api_key);
    if (!token.empty()) return token;
  }
  return std::nullopt;
}

}  // namespace tally::http
