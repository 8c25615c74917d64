#include "reference.h"

#include <gtest/gtest.h>
#include <time.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <regex>

namespace tally::integration {
namespace {

using nlohmann::json;

constexpr int64_t kMillisPerDay = 86'400'000;

int64_t FloorDiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

// Validates y-m-d h:m:s by a round trip through timegm/gmtime_r (timegm normalizes, so an
// impossible date such as 02-30 comes back different). Returns epoch seconds.
std::optional<int64_t> CivilToEpoch(int y, int mo, int d, int h, int mi, int s) {
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 59) return std::nullopt;
  struct tm tm = {};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = s;
  time_t t = timegm(&tm);
  struct tm back = {};
  gmtime_r(&t, &back);
  if (back.tm_year != y - 1900 || back.tm_mon != mo - 1 || back.tm_mday != d) return std::nullopt;
  return static_cast<int64_t>(t);
}

std::string Strftime(int64_t day, const char* format) {
  time_t t = static_cast<time_t>(day * 86400);
  struct tm tm = {};
  gmtime_r(&t, &tm);
  char buf[32];
  size_t n = strftime(buf, sizeof buf, format, &tm);
  return std::string(buf, n);
}

// Absent and null are the same thing for every field (docs/design.md: "everything else is
// optional").
const json* Field(const json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

constexpr size_t kMaxIdBytes = 256;     // identifiers (schemas/usage-event.schema.json)
constexpr size_t kMaxTextBytes = 2048;  // names, emails, photos, status

// A required string: present, a string, non-empty, at most `max` bytes.
bool RequiredString(const json& obj, const char* key, size_t max = kMaxIdBytes) {
  const json* v = Field(obj, key);
  return v && v->is_string() && !v->get_ref<const std::string&>().empty() &&
         v->get_ref<const std::string&>().size() <= max;
}

// An identifier may also be an integer JSON number (producers with numeric ids): 42 -> "42".
std::optional<std::string> IdOf(const json* v) {
  if (!v) return std::nullopt;
  if (v->is_string()) {
    const std::string& s = v->get_ref<const std::string&>();
    if (s.empty() || s.size() > kMaxIdBytes) return std::nullopt;
    return s;
  }
  if (v->is_number_unsigned()) return std::to_string(v->get<uint64_t>());
  if (v->is_number_integer()) return std::to_string(v->get<int64_t>());
  if (v->is_number_float()) {
    double d = v->get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9e15) {
      return std::to_string(static_cast<int64_t>(d));
    }
  }
  return std::nullopt;
}

// An optional string field: absent/null, or a string of at most `max` bytes.
bool OptionalString(const json& obj, const char* key, size_t max = kMaxTextBytes) {
  const json* v = Field(obj, key);
  return !v || (v->is_string() && v->get_ref<const std::string&>().size() <= max);
}

// An optional number field: absent/null, or a finite number >= 0.
bool OptionalNonNegative(const json& obj, const char* key) {
  const json* v = Field(obj, key);
  if (!v) return true;
  if (!v->is_number()) return false;
  double d = v->get<double>();
  return std::isfinite(d) && d >= 0;
}

}  // namespace

std::optional<int64_t> RefParseTimeMillis(const std::string& text) {
  static const std::regex kRfc3339(
      R"(^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.(\d+))?([Zz]|([+-])(\d{2}):(\d{2}))$)");
  std::smatch m;
  if (!std::regex_match(text, m, kRfc3339)) return std::nullopt;
  auto num = [&](int i) { return std::stoi(m[i].str()); };
  int sec = num(6);
  if (sec == 60) sec = 59;  // a leap second stays in its minute (RFC 3339 allows :60)
  std::optional<int64_t> epoch = CivilToEpoch(num(1), num(2), num(3), num(4), num(5), sec);
  if (!epoch) return std::nullopt;
  int64_t millis = 0;
  if (m[8].matched) {
    std::string frac = m[8].str().substr(0, 3);
    while (frac.size() < 3) frac += '0';
    millis = std::stoi(frac);
  }
  int64_t offset_sec = 0;
  if (m[10].matched) {
    int oh = num(11), om = num(12);
    if (oh > 23 || om > 59) return std::nullopt;
    offset_sec = (oh * 3600 + om * 60) * (m[10].str() == "-" ? -1 : 1);
  }
  return (*epoch - offset_sec) * 1000 + millis;
}

std::optional<int64_t> RefParseDay(const std::string& text) {
  static const std::regex kDay(R"(^(\d{4})-(\d{2})-(\d{2})$)");
  std::smatch m;
  if (!std::regex_match(text, m, kDay)) return std::nullopt;
  std::optional<int64_t> epoch =
      CivilToEpoch(std::stoi(m[1].str()), std::stoi(m[2].str()), std::stoi(m[3].str()), 0, 0, 0);
  if (!epoch) return std::nullopt;
  return *epoch / 86400;
}

std::string RefDayLabel(int64_t day) { return Strftime(day, "%Y-%m-%d"); }

std::string RefBucketLabel(int64_t day, const std::string& granularity) {
  if (granularity == "weekly") return Strftime(day, "%G-%V");  // ISO week-year and week
  if (granularity == "monthly") return Strftime(day, "%Y-%m");
  return Strftime(day, "%Y-%m-%d");
}

std::string RefValidate(std::string_view line, RefEvent* out) {
  if (line.size() > kRefMaxEventBytes) return "oversized";
  json doc = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return "bad json";
  if (!doc.is_object()) return "not an object";
  const json* sv = Field(doc, "specversion");
  if (!sv || !sv->is_string() || *sv != "1.0") return "specversion";
  if (!RequiredString(doc, "id")) return "id";
  if (!RequiredString(doc, "source")) return "source";
  const json* type_v = Field(doc, "type");
  if (!type_v || !type_v->is_string()) return "type";
  std::string type = *type_v;
  static const std::set<std::string> kActions = {"created",  "updated", "deleted",
                                                 "executed", "copied",  "shared"};
  size_t dot = type.find('.');
  if (dot == std::string::npos) return "type";
  std::string kind = type.substr(0, dot), action = type.substr(dot + 1);
  if ((kind != "agent" && kind != "workflow") || !kActions.contains(action)) return "type";
  const json* time_v = Field(doc, "time");
  if (!time_v || !time_v->is_string()) return "time";
  std::optional<int64_t> time_ms = RefParseTimeMillis(time_v->get<std::string>());
  if (!time_ms) return "time";
  const json* data_v = Field(doc, "data");
  if (!data_v || !data_v->is_object()) return "data";
  const json& data = *data_v;
  if (!RequiredString(data, "workspace_id")) return "data.workspace_id";
  if (!OptionalString(data, "organization_id", kMaxIdBytes)) return "data.organization_id";
  if (!OptionalString(data, "project_id", kMaxIdBytes)) return "data.project_id";
  const json* user_v = Field(data, "user");
  if (!user_v || !user_v->is_object()) return "data.user";
  const json& user = *user_v;
  std::optional<std::string> user_id = IdOf(Field(user, "id"));
  if (!user_id) return "data.user.id";
  for (const char* f : {"name", "email", "photo"}) {
    if (!OptionalString(user, f)) return std::string("data.user.") + f;
  }
  static const std::set<std::string> kVisibilities = {"private", "workspace", "public_with_login",
                                                      "public_without_login"};
  for (const char* k : {"agent", "workflow"}) {
    const json* entity = Field(data, k);
    bool subject = kind == k;
    if (!entity) {
      if (subject) return std::string("data.") + k;
      continue;
    }
    if (!entity->is_object()) return std::string("data.") + k;
    if ((subject || Field(*entity, "id")) && !IdOf(Field(*entity, "id"))) {
      return std::string("data.") + k + ".id";
    }
    if (Field(*entity, "owner_user_id") && !IdOf(Field(*entity, "owner_user_id"))) {
      return std::string("data.") + k + ".owner_user_id";
    }
    if (!OptionalString(*entity, "name")) return std::string("data.") + k + ".name";
    const json* vis = Field(*entity, "visibility");
    if (vis && (!vis->is_string() || !kVisibilities.contains(vis->get<std::string>()))) {
      return std::string("data.") + k + ".visibility";
    }
  }
  for (const char* f : {"duration_ms", "cost_usd", "message_credits", "integration_credits"}) {
    if (!OptionalNonNegative(data, f)) return std::string("data.") + f;
  }
  const json* tokens = Field(data, "tokens");
  if (tokens &&
      !((tokens->is_number_unsigned() || tokens->is_number_integer()) &&
        tokens->get<int64_t>() >= 0) &&
      !(tokens->is_number_float() && tokens->get<double>() >= 0 &&
        tokens->get<double>() == std::floor(tokens->get<double>()) &&
        tokens->get<double>() < 9.2e18)) {
    return "data.tokens";
  }
  if (!OptionalString(data, "status")) return "data.status";

  out->source = doc["source"];
  out->id = doc["id"];
  out->workspace_id = data["workspace_id"];
  const json* org = Field(data, "organization_id");
  out->organization_id = org && org->is_string() ? org->get<std::string>() : "";
  out->kind = kind;
  out->action = action;
  out->user_id = *user_id;
  const json* name = Field(user, "name");
  out->user_name = name ? name->get<std::string>() : "";
  out->time_ms = *time_ms;
  out->day = FloorDiv(*time_ms, kMillisPerDay);
  out->duration_ms.reset();
  if (const json* d = Field(data, "duration_ms")) out->duration_ms = d->get<double>();
  return "";
}

ReferenceModel::ReferenceModel(const std::string& today) {
  std::optional<int64_t> day = RefParseDay(today);
  if (!day) ADD_FAILURE() << "ReferenceModel: bad today " << today;
  today_ = day.value_or(0);
}

RefVerdict ReferenceModel::Add(std::string_view line) {
  RefEvent e;
  if (!RefValidate(line, &e).empty()) {
    ++invalid_;
    return RefVerdict::kInvalid;
  }
  if (bindings_.Refuses(e.workspace_id, e.organization_id)) {
    ++refused_;
    return RefVerdict::kRefused;
  }
  if (!seen_.insert({e.source, e.id}).second) {
    ++duplicates_;
    return RefVerdict::kDuplicate;
  }
  events_.push_back(std::move(e));
  return RefVerdict::kAccepted;
}

RefAnswer ReferenceModel::Answer(const RefQuery& q) const {
  int64_t to = today_;
  int64_t from = today_;
  if (q.period == "all") {
    for (const RefEvent& e : events_) {
      if (e.workspace_id == q.workspace_id) from = std::min(from, e.day);
    }
  } else {
    int n = std::stoi(q.period);  // "7d" -> 7
    from = today_ - n + 1;
  }
  std::string kind = q.entity == "workflows" ? "workflow" : "agent";
  std::string action = q.metric == "created"  ? "created"
                       : q.metric == "copies" ? "copied"
                       : q.metric == "shares" ? "shared"
                                              : "executed";
  bool durations = q.metric == "avg_duration";

  struct Acc {
    double count = 0;
    double sum = 0;
  };
  auto value_of = [&](const Acc& a) {
    if (q.aggregation == "count") return a.count;
    if (q.aggregation == "sum") return a.sum;
    return a.count == 0 ? 0.0 : a.sum / a.count;
  };

  Acc total;
  std::map<std::string, Acc> by_key;  // user id or bucket label
  for (const RefEvent& e : events_) {
    if (e.workspace_id != q.workspace_id || e.kind != kind || e.action != action) continue;
    if (durations && !e.duration_ms) continue;
    if (q.user_id && e.user_id != *q.user_id) continue;
    if (e.day < from || e.day > to) continue;
    double measure = durations ? *e.duration_ms : 1.0;
    total.count += 1;
    total.sum += measure;
    if (q.group_by == "user") {
      by_key[e.user_id].count += 1;
      by_key[e.user_id].sum += measure;
    } else if (q.group_by == "date") {
      Acc& a = by_key[RefBucketLabel(e.day, q.granularity)];
      a.count += 1;
      a.sum += measure;
    }
  }

  RefAnswer answer;
  answer.total = value_of(total);
  answer.from = RefDayLabel(from);
  answer.to = RefDayLabel(to);
  if (q.group_by == "date") {
    std::string last;
    for (int64_t d = from; d <= to; ++d) {
      std::string label = RefBucketLabel(d, q.granularity);
      if (label == last) continue;
      last = label;
      answer.rows.push_back({label, "", value_of(by_key[label])});
    }
  } else if (q.group_by == "user") {
    // Latest (event time, then log order) non-empty name of each user in this workspace.
    std::map<std::string, std::pair<int64_t, std::string>> names;
    for (const RefEvent& e : events_) {
      if (e.workspace_id != q.workspace_id || e.user_name.empty()) continue;
      auto [it, inserted] = names.try_emplace(e.user_id, e.time_ms, e.user_name);
      if (!inserted && e.time_ms >= it->second.first) it->second = {e.time_ms, e.user_name};
    }
    for (const auto& [user_id, acc] : by_key) {
      auto it = names.find(user_id);
      answer.rows.push_back({user_id, it == names.end() ? "" : it->second.second, value_of(acc)});
    }
    std::stable_sort(answer.rows.begin(), answer.rows.end(),
                     [](const RefRow& a, const RefRow& b) { return a.value > b.value; });
  }
  return answer;
}

std::vector<std::string> ReferenceModel::WorkspacesByActivity() const {
  std::map<std::string, size_t> n;
  for (const RefEvent& e : events_) ++n[e.workspace_id];
  std::vector<std::pair<size_t, std::string>> v;
  for (auto& [ws, c] : n) v.push_back({c, ws});
  std::stable_sort(v.begin(), v.end(), [](auto& a, auto& b) { return a.first > b.first; });
  std::vector<std::string> out;
  for (auto& [c, ws] : v) out.push_back(ws);
  return out;
}

std::vector<std::string> ReferenceModel::UsersByActivity(const std::string& workspace_id) const {
  std::map<std::string, size_t> n;
  for (const RefEvent& e : events_) {
    if (e.workspace_id == workspace_id) ++n[e.user_id];
  }
  std::vector<std::pair<size_t, std::string>> v;
  for (auto& [u, c] : n) v.push_back({c, u});
  std::stable_sort(v.begin(), v.end(), [](auto& a, auto& b) { return a.first > b.first; });
  std::vector<std::string> out;
  for (auto& [c, u] : v) out.push_back(u);
  return out;
}

}  // namespace tally::integration
