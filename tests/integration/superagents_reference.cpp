#include "superagents_reference.h"

#include <algorithm>
#include <cctype>

#include "reference.h"

namespace tally::integration {
namespace {

using nlohmann::json;

constexpr int64_t kDayMs = 86'400'000;

std::string StringAt(const json& obj, const char* key) {
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : "";
}

double NumberAt(const json& obj, const char* key) {
  auto it = obj.find(key);
  return it != obj.end() && it->is_number() ? it->get<double>() : -1;
}

}  // namespace

std::optional<SuperagentsEvent> SuperagentsEventOf(const std::string& line) {
  json e = json::parse(line, nullptr, false);
  if (e.is_discarded() || !e.contains("data")) return std::nullopt;
  const json& d = e["data"];
  SuperagentsEvent out;
  out.type = StringAt(e, "type");
  out.time = StringAt(e, "time");
  out.ws = StringAt(d, "workspace_id");
  if (auto u = d.find("user"); u != d.end() && u->is_object()) {
    if (auto id = u->find("id"); id != u->end()) {
      out.user = id->is_string() ? id->get<std::string>() : id->dump();
    }
    out.email = StringAt(*u, "email");
  }
  if (auto a = d.find("agent"); a != d.end() && a->is_object()) {
    out.agent = StringAt(*a, "id");
    out.name = StringAt(*a, "name");
    out.visibility = StringAt(*a, "visibility");
    out.owner = StringAt(*a, "owner_user_id");
  }
  out.message = NumberAt(d, "message_credits");
  out.integration = NumberAt(d, "integration_credits");
  return out;
}

void SuperagentsReference::Add(const SuperagentsEvent& s) {
  const int64_t t = *RefParseTimeMillis(s.time);
  const int64_t day = t / kDayMs;
  emails_[{s.ws, s.user}].Set(s.email, t);
  if (!s.type.starts_with("agent.")) return;
  Agent& a = agents_[s.ws][s.agent];
  a.name.Set(s.name, t);
  a.visibility.Set(s.visibility, t);
  a.owner.Set(s.owner, t);
  if (s.type == "agent.created" || s.type == "agent.copied") {
    if (!a.created || t < *a.created) {
      a.created = t;
      a.created_by = s.user;
    }
    if (!a.revived || t > *a.revived) a.revived = t;
  } else if (s.type == "agent.deleted") {
    if (!a.deleted || t > *a.deleted) a.deleted = t;
  } else if (s.type == "agent.executed") {
    a.credits[day].first += std::max(0.0, s.message);
    a.credits[day].second += std::max(0.0, s.integration);
    a.executors[day].insert(s.user);
  }
}

std::vector<json> SuperagentsReference::Rows(const std::string& ws, int64_t from, int64_t to,
                                             const std::string& sort, const std::string& search,
                                             const std::string& visibility, int64_t today) const {
  std::vector<json> rows;
  auto wit = agents_.find(ws);
  if (wit == agents_.end()) return rows;
  auto lower = [](std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  };
  for (const auto& [id, a] : wit->second) {
    if (!a.created) continue;
    if (a.deleted && !(a.revived && *a.revived > *a.deleted)) continue;
    const std::string& vis = a.visibility.value;
    if (visibility == "public") {
      if (vis != "public_with_login" && vis != "public_without_login") continue;
    } else if (!visibility.empty() && vis != visibility) {
      continue;
    }
    std::string email;
    if (auto e = emails_.find({ws, a.created_by}); e != emails_.end()) email = e->second.value;
    if (!search.empty() && lower(a.name.value).find(lower(search)) == std::string::npos &&
        lower(email).find(lower(search)) == std::string::npos) {
      continue;
    }
    double m = 0, i = 0;
    for (const auto& [d, c] : a.credits) {
      if (d >= from && d <= to) m += c.first, i += c.second;
    }
    std::set<std::string> users;
    for (const auto& [d, u] : a.executors) {
      if (d >= today - 29 && d <= today) users.insert(u.begin(), u.end());
    }
    json created_at = json(*a.created / 1000);
    rows.push_back({{"superagent_id", id},
                    {"superagent_name", a.name.value.empty() ? json() : json(a.name.value)},
                    {"active_users_last_30d", users.size()},
                    {"message_credits_consumed", m},
                    {"integration_credits_consumed", i},
                    {"total_credits_consumed", m + i},
                    {"owner_user_id", a.owner.value.empty() ? a.created_by : a.owner.value},
                    {"created_by_email", email.empty() ? json() : json(email)},
                    {"created_at", created_at}});
  }
  const bool desc = !sort.empty() && sort[0] == '-';
  const std::string field = desc ? sort.substr(1) : sort;
  auto key = [&](const json& r) -> json {
    const json& v = r[field];
    return v.is_null() ? json("") : v;
  };
  std::sort(rows.begin(), rows.end(), [&](const json& a, const json& b) {
    json ka = key(a), kb = key(b);
    if (ka != kb) return desc ? kb < ka : ka < kb;
    return a["superagent_id"].get<std::string>() < b["superagent_id"].get<std::string>();
  });
  return rows;
}

json NormalizeSuperagents(json body) {
  for (json& row : body["superagents"]) {
    auto ms = RefParseTimeMillis(row["created_at"].get<std::string>());
    row["created_at"] = ms ? json(*ms / 1000) : json();
  }
  return body;
}

}  // namespace tally::integration
