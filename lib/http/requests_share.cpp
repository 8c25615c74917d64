#include "http/requests_share.h"

#include <simdjson.h>

#include "common/json_writer.h"
#include "http/router.h"

namespace tally::http {
namespace {

constexpr char kHex[] = "0123456789abcdef";

// Scopes are binary (store::WorkspaceRequestScope): hex keeps them valid JSON and keeps their
// byte order, which breaks ties between emails.
std::string Hex(std::string_view s) {
  std::string out;
  out.reserve(s.size() * 2);
  for (unsigned char c : s) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

bool Unhex(std::string_view s, std::string* out) {
  if (s.size() % 2 != 0) return false;
  out->clear();
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  for (size_t i = 0; i < s.size(); i += 2) {
    const int hi = nibble(s[i]), lo = nibble(s[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out->push_back(static_cast<char>(hi * 16 + lo));
  }
  return true;
}

void Strings(JsonWriter* w, const std::vector<std::string>& v) {
  w->BeginArray();
  for (const std::string& s : v) w->String(s);
  w->EndArray();
}

std::unexpected<Error> Bad(std::string member) {
  return Fail(ErrorCode::kInvalidArgument, "malformed requests share: " + member, member);
}

using simdjson::dom::array;
using simdjson::dom::element;
using simdjson::dom::object;

bool GetU64(element e, std::string_view key, uint64_t* out) {
  return !e[key].get_uint64().get(*out);
}
bool GetI64(element e, std::string_view key, int64_t* out) { return !e[key].get_int64().get(*out); }
bool GetString(element e, std::string_view key, std::string* out) {
  std::string_view v;
  if (e[key].get_string().get(v)) return false;
  out->assign(v);
  return true;
}
bool GetStrings(element e, std::string_view key, std::vector<std::string>* out) {
  array a;
  if (e[key].get_array().get(a)) return false;
  for (element item : a) {
    std::string_view v;
    if (item.get_string().get(v)) return false;
    out->emplace_back(v);
  }
  return true;
}

}  // namespace

std::string EncodeShareWorkspaces(const std::vector<std::string>& workspaces) {
  std::string out;
  for (const std::string& ws : workspaces) {
    if (!out.empty()) out.push_back(',');
    out.append(PercentEncode(ws));
  }
  return out;
}

Result<std::vector<std::string>> DecodeShareWorkspaces(std::string_view value) {
  std::vector<std::string> out;
  while (!value.empty()) {
    const size_t comma = value.find(',');
    std::string_view item = value.substr(0, comma);
    if (item.empty()) return Bad(std::string(kRequestsShareHeader));
    out.push_back(PercentDecode(item, /*plus_as_space=*/false));
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
    if (value.empty()) return Bad(std::string(kRequestsShareHeader));
  }
  return out;
}

std::string RenderRequestsShare(const query::RequestsShare& share) {
  std::string out;
  JsonWriter w(&out);
  w.BeginObject();
  w.Key("requests").Int(static_cast<int64_t>(share.requests));
  w.Key("agents").Int(static_cast<int64_t>(share.agents));
  w.Key("agent_users").Int(static_cast<int64_t>(share.agent_users));
  w.Key("user_ids");
  Strings(&w, share.user_ids);
  w.Key("users").BeginArray();
  for (const auto& u : share.users) {
    w.BeginObject();
    w.Key("id").String(u.id);
    w.Key("requests").Int(static_cast<int64_t>(u.requests));
    w.Key("tokens").Int(static_cast<int64_t>(u.tokens));
    w.Key("cost_nanos").Int(u.cost_nanos);
    if (u.email) {
      w.Key("email").String(*u.email);
      w.Key("email_time_ms").Int(u.email_time_ms);
      w.Key("email_scope").String(Hex(u.email_scope));
    }
    w.EndObject();
  }
  w.EndArray();
  w.Key("top_agents").BeginArray();
  for (const auto& a : share.top_agents) {
    w.BeginObject();
    w.Key("name").String(a.name);
    w.Key("workspace").String(a.workspace);
    w.Key("id").String(a.id);
    w.Key("value").Int(static_cast<int64_t>(a.value));
    w.EndObject();
  }
  w.EndArray();
  w.Key("projects").BeginArray();
  for (const auto& p : share.projects) {
    w.BeginObject();
    w.Key("organization").String(p.organization);
    w.Key("id").String(p.id);
    w.Key("users");
    Strings(&w, p.users);
    w.EndObject();
  }
  w.EndArray();
  w.Key("days").BeginArray();
  for (const auto& d : share.days) {
    w.BeginObject();
    w.Key("day").Int(d.day);
    w.Key("requests").Int(static_cast<int64_t>(d.requests));
    w.Key("errors").Int(static_cast<int64_t>(d.errors));
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return out;
}

Result<query::RequestsShare> ParseRequestsShare(std::string_view json) {
  thread_local simdjson::dom::parser parser;
  element doc;
  if (parser.parse(simdjson::padded_string(json)).get(doc) || !doc.is_object()) {
    return Bad("body");
  }
  query::RequestsShare s;
  if (!GetU64(doc, "requests", &s.requests)) return Bad("requests");
  if (!GetU64(doc, "agents", &s.agents)) return Bad("agents");
  if (!GetU64(doc, "agent_users", &s.agent_users)) return Bad("agent_users");
  if (!GetStrings(doc, "user_ids", &s.user_ids)) return Bad("user_ids");
  array a;
  if (doc["users"].get_array().get(a)) return Bad("users");
  for (element e : a) {
    query::RequestsShare::User& u = s.users.emplace_back();
    if (!GetString(e, "id", &u.id) || !GetU64(e, "requests", &u.requests) ||
        !GetU64(e, "tokens", &u.tokens) || !GetI64(e, "cost_nanos", &u.cost_nanos)) {
      return Bad("users");
    }
    std::string email, scope;
    if (GetString(e, "email", &email)) {
      if (!GetI64(e, "email_time_ms", &u.email_time_ms) || !GetString(e, "email_scope", &scope) ||
          !Unhex(scope, &u.email_scope)) {
        return Bad("users");
      }
      u.email = std::move(email);
    }
  }
  if (doc["top_agents"].get_array().get(a)) return Bad("top_agents");
  for (element e : a) {
    query::RequestsShare::Agent& ag = s.top_agents.emplace_back();
    if (!GetString(e, "name", &ag.name) || !GetString(e, "workspace", &ag.workspace) ||
        !GetString(e, "id", &ag.id) || !GetU64(e, "value", &ag.value)) {
      return Bad("top_agents");
    }
  }
  if (doc["projects"].get_array().get(a)) return Bad("projects");
  for (element e : a) {
    query::RequestsShare::Project& p = s.projects.emplace_back();
    if (!GetString(e, "organization", &p.organization) || !GetString(e, "id", &p.id) ||
        !GetStrings(e, "users", &p.users)) {
      return Bad("projects");
    }
  }
  if (doc["days"].get_array().get(a)) return Bad("days");
  for (element e : a) {
    int64_t day;
    query::DayRow& d = s.days.emplace_back();
    if (!GetI64(e, "day", &day) || day < INT32_MIN || day > INT32_MAX ||
        !GetU64(e, "requests", &d.requests) || !GetU64(e, "errors", &d.errors)) {
      return Bad("days");
    }
    d.day = static_cast<DayNumber>(day);
  }
  return s;
}

}  // namespace tally::http
