#include "metrics_compare.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

namespace tally::integration {
namespace {

using nlohmann::json;

bool Near(double a, double b) {
  return std::fabs(a - b) <= 1e-9 * std::max({1.0, std::fabs(a), std::fabs(b)});
}

std::string Num(double v) {
  std::ostringstream s;
  s.precision(17);
  s << v;
  return s.str();
}

std::string Describe(const WireRequest& w) {
  std::string s = w.method + " " + w.target;
  if (!w.body.empty()) s += "  body: " + w.body;
  return s;
}

std::string ExpectedText(const RefAnswer& a, size_t max_rows = 40) {
  std::string s = "total=" + Num(a.total) + " period=" + a.from + ".." + a.to + " rows(" +
                  std::to_string(a.rows.size()) + ")=[";
  for (size_t i = 0; i < a.rows.size() && i < max_rows; ++i) {
    s += (i ? ", " : "") + a.rows[i].key;
    if (!a.rows[i].user_name.empty()) s += " \"" + a.rows[i].user_name + "\"";
    s += ": " + Num(a.rows[i].value);
  }
  if (a.rows.size() > max_rows) s += ", ...";
  return s + "]";
}

std::string Truncate(const std::string& s, size_t n = 3000) {
  return s.size() <= n ? s : s.substr(0, n) + "...(" + std::to_string(s.size()) + " bytes)";
}

double NumberOr(const json& j, double fallback) {
  return j.is_number() ? j.get<double>() : fallback;
}

std::string StringOf(const json& j) {
  if (j.is_string()) return j.get<std::string>();
  return j.dump();
}

// Compares the parsed response with the reference; appends problems to *out.
void CompareBody(const MetricsCall& call, const RefAnswer& want, const json& body,
                 std::vector<std::string>* out) {
  const RefQuery& q = call.query;
  auto problem = [&](std::string s) { out->push_back(std::move(s)); };
  if (!body.is_object() || !body.contains("data") || !body["data"].is_object()) {
    problem("response has no \"data\" object");
    return;
  }
  const json& data = body["data"];
  auto expect_string = [&](const char* field, const json& expected) {
    json actual = data.contains(field) ? data[field] : json("<absent>");
    if (actual != expected) {
      problem(std::string("data.") + field + ": expected " + expected.dump() + ", got " +
              actual.dump());
    }
  };
  expect_string("entity", q.entity);
  expect_string("metric", q.metric);
  expect_string("aggregation", q.aggregation);
  expect_string("group_by", q.group_by.empty() ? json(nullptr) : json(q.group_by));
  json want_granularity = nullptr;
  if (q.group_by == "date") {
    want_granularity = q.granularity;
  } else if (call.granularity) {
    want_granularity = *call.granularity;  // echoed (contract example: group_by=user, daily)
  }
  expect_string("granularity", want_granularity);

  if (!data.contains("total") || !data["total"].is_number()) {
    problem("data.total missing or not a number: " +
            (data.contains("total") ? data["total"].dump() : "<absent>"));
  } else if (!Near(data["total"].get<double>(), want.total)) {
    problem("data.total: expected " + Num(want.total) + ", got " + data["total"].dump());
  }

  const json* meta = body.contains("meta") ? &body["meta"] : nullptr;
  if (!meta || !meta->is_object()) {
    problem("response has no \"meta\" object");
  } else {
    json period = meta->value("period", json());
    if (period.value("from", "") != want.from || period.value("to", "") != want.to) {
      problem("meta.period: expected " + want.from + ".." + want.to + ", got " + period.dump());
    }
    json unit = meta->contains("unit") ? (*meta)["unit"] : json("<absent>");
    json want_unit = q.metric == "avg_duration" ? json("milliseconds") : json(nullptr);
    if (unit != want_unit)
      problem("meta.unit: expected " + want_unit.dump() + ", got " + unit.dump());
    if (!meta->contains("cached_at") || !(*meta)["cached_at"].is_string()) {
      problem("meta.cached_at missing or not a string");
    }
    if (!meta->contains("cache_ttl") || !(*meta)["cache_ttl"].is_number()) {
      problem("meta.cache_ttl missing or not a number");
    }
  }

  if (!data.contains("results") || !data["results"].is_array()) {
    problem("data.results missing or not an array");
    return;
  }
  const json& results = data["results"];
  if (q.group_by.empty()) {
    if (!results.empty())
      problem("data.results: expected [], got " + Truncate(results.dump(), 300));
    return;
  }
  if (q.group_by == "date") {
    if (results.size() != want.rows.size()) {
      problem("data.results: expected " + std::to_string(want.rows.size()) + " date rows, got " +
              std::to_string(results.size()));
    }
    size_t n = std::min<size_t>(results.size(), want.rows.size());
    int shown = 0;
    for (size_t i = 0; i < n; ++i) {
      std::string date = results[i].value("date", json("<absent>")).is_string()
                             ? results[i]["date"].get<std::string>()
                             : "<absent>";
      double v = NumberOr(results[i].value("value", json()), NAN);
      if (date != want.rows[i].key || !Near(v, want.rows[i].value)) {
        if (shown++ < 8) {
          problem("row " + std::to_string(i) + ": expected {date " + want.rows[i].key + ", value " +
                  Num(want.rows[i].value) + "}, got " + results[i].dump());
        }
      }
    }
    if (shown > 8) problem("... and " + std::to_string(shown - 8) + " more date rows differ");
    return;
  }
  // group_by=user: rows ordered by value desc (ties in any order); compare by user id.
  size_t expect_n = std::min<size_t>(want.rows.size(), static_cast<size_t>(call.limit));
  if (results.size() != expect_n) {
    problem("data.results: expected " + std::to_string(expect_n) + " user rows (of " +
            std::to_string(want.rows.size()) + " users, limit " + std::to_string(call.limit) +
            "), got " + std::to_string(results.size()));
  }
  std::map<std::string, const RefRow*> by_user;
  for (const RefRow& r : want.rows) by_user[r.key] = &r;
  std::vector<double> got_values, want_values;
  for (size_t i = 0; i < expect_n; ++i) want_values.push_back(want.rows[i].value);
  double previous = INFINITY;
  int shown = 0;
  std::map<std::string, int> seen;
  for (size_t i = 0; i < results.size(); ++i) {
    const json& row = results[i];
    std::string user = row.contains("user_id") ? StringOf(row["user_id"]) : "<absent>";
    std::string name = row.contains("user_name") && row["user_name"].is_string()
                           ? row["user_name"].get<std::string>()
                           : (row.contains("user_name") ? row["user_name"].dump() : "<absent>");
    double v = NumberOr(row.value("value", json()), NAN);
    got_values.push_back(v);
    if (++seen[user] == 2) problem("user " + user + " listed twice");
    if (v > previous + 1e-9 * std::max(1.0, std::fabs(v))) {
      problem("rows not ordered by value desc at row " + std::to_string(i) + ": " + Num(previous) +
              " then " + Num(v));
    }
    previous = v;
    auto it = by_user.find(user);
    if (it == by_user.end()) {
      if (shown++ < 8)
        problem("row " + std::to_string(i) + " " + row.dump() +
                ": user has no event in the period per the reference");
      continue;
    }
    if (!Near(v, it->second->value) || name != it->second->user_name) {
      if (shown++ < 8) {
        problem("user " + user + ": expected {user_name \"" + it->second->user_name + "\", value " +
                Num(it->second->value) + "}, got " + row.dump());
      }
    }
  }
  if (shown > 8) problem("... and " + std::to_string(shown - 8) + " more user rows differ");
  std::sort(got_values.begin(), got_values.end());
  std::sort(want_values.begin(), want_values.end());
  bool same = got_values.size() == want_values.size();
  for (size_t i = 0; same && i < got_values.size(); ++i) same = Near(got_values[i], want_values[i]);
  if (!same)
    problem("multiset of row values differs from the reference's top " + std::to_string(expect_n));
}

}  // namespace

const char* RequestFormName(RequestForm form) {
  switch (form) {
    case RequestForm::kGetBody:
      return "GET+body";
    case RequestForm::kPostBody:
      return "POST+body";
    case RequestForm::kQueryParams:
      return "GET?filters[...]";
    case RequestForm::kQueryParamsAliases:
      return "GET?period=";
  }
  return "?";
}

bool SeedRejects(const RefQuery& q) {
  return q.metric == "avg_duration" && (q.entity != "workflows" || !q.group_by.empty());
}

std::vector<MetricsCall> AllCombinations(const std::string& workspace_id,
                                         const std::string& user_id) {
  std::vector<MetricsCall> out;
  std::vector<std::optional<std::string>> users = {std::nullopt};
  if (!user_id.empty()) users.push_back(user_id);
  int n = 0;
  for (const char* entity : {"agents", "workflows"}) {
    for (const char* metric : {"executions", "created", "copies", "shares", "avg_duration"}) {
      for (const char* aggregation : {"count", "sum", "avg"}) {
        for (const char* group_by : {"", "user", "date"}) {
          std::vector<std::optional<std::string>> granularities = {"daily", "weekly", "monthly"};
          if (std::string(group_by) != "date") granularities.insert(granularities.begin(), {});
          for (const auto& granularity : granularities) {
            for (const char* period : {"7d", "30d", "90d", "all"}) {
              for (const auto& user : users) {
                MetricsCall c;
                c.query.workspace_id = workspace_id;
                c.query.entity = entity;
                c.query.metric = metric;
                c.query.aggregation = aggregation;
                c.query.group_by = group_by;
                c.query.granularity = granularity.value_or("daily");
                c.query.period = period;
                c.query.user_id = user;
                c.granularity = granularity;
                c.limit = 100;
                c.form = (n++ % 2) ? RequestForm::kPostBody : RequestForm::kGetBody;
                out.push_back(std::move(c));
              }
            }
          }
        }
      }
    }
  }
  return out;
}

WireRequest BuildRequest(const MetricsCall& call) {
  const RefQuery& q = call.query;
  WireRequest w;
  if (call.form == RequestForm::kGetBody || call.form == RequestForm::kPostBody) {
    json body = {{"workspace_uuid", q.workspace_id},
                 {"entity", q.entity},
                 {"metric", q.metric},
                 {"aggregation", q.aggregation}};
    if (!q.group_by.empty()) body["group_by"] = q.group_by;
    if (call.granularity) body["granularity"] = *call.granularity;
    body["filters"] = {{"period", q.period}};
    if (q.user_id) body["filters"]["user_id"] = *q.user_id;
    if (q.group_by == "user") body["limit"] = call.limit;
    w.method = call.form == RequestForm::kGetBody ? "GET" : "POST";
    w.target = "/api/v1/workspaces/metrics";
    w.body = body.dump();
    return w;
  }
  bool aliases = call.form == RequestForm::kQueryParamsAliases;
  std::string t = "/api/v1/workspaces/metrics?workspace_uuid=" + UrlEncode(q.workspace_id) +
                  "&entity=" + q.entity + "&metric=" + q.metric + "&aggregation=" + q.aggregation;
  if (!q.group_by.empty()) t += "&group_by=" + q.group_by;
  if (call.granularity) t += "&granularity=" + *call.granularity;
  t += (aliases ? "&period=" : "&" + UrlEncode("filters[period]") + "=") + q.period;
  if (q.user_id) {
    t +=
        (aliases ? "&user_id=" : "&" + UrlEncode("filters[user_id]") + "=") + UrlEncode(*q.user_id);
  }
  if (q.group_by == "user") t += "&limit=" + std::to_string(call.limit);
  w.method = "GET";
  w.target = t;
  return w;
}

std::string CheckMetricsCall(HttpClient& http, const std::string& token, const ReferenceModel& ref,
                             const MetricsCall& call) {
  WireRequest w = BuildRequest(call);
  Result<HttpResponse> r =
      http.Send(w.method, w.target, {{"Authorization", "Bearer " + token}}, w.body);
  std::string request =
      "request (" + std::string(RequestFormName(call.form)) + "): " + Describe(w) + "\n";
  if (!r) return request + "transport error: " + r.error().message;
  if (SeedRejects(call.query)) {
    if (r->status != 422) {
      return request + "expected 422 (the API forbids this combination), got " +
             std::to_string(r->status) + ": " + Truncate(r->body, 500);
    }
    json body = json::parse(r->body, nullptr, false);
    if (body.is_discarded() || !body.is_object() || !body.contains("message") ||
        !body["message"].is_string() || !body.contains("errors") || !body["errors"].is_object() ||
        (!body["errors"].contains("metric") && !body["errors"].contains("group_by"))) {
      return request + "422 body lacks message/errors.metric|group_by: " + Truncate(r->body, 500);
    }
    return "";
  }
  RefAnswer want = ref.Answer(call.query);
  if (r->status != 200) {
    return request + "expected 200, got " + std::to_string(r->status) + ": " +
           Truncate(r->body, 800) + "\nexpected: " + ExpectedText(want);
  }
  json body = json::parse(r->body, nullptr, false);
  if (body.is_discarded()) return request + "response is not JSON: " + Truncate(r->body, 800);
  std::vector<std::string> problems;
  CompareBody(call, want, body, &problems);
  if (problems.empty()) return "";
  std::string s = request;
  for (const std::string& p : problems) s += "  - " + p + "\n";
  s += "expected: " + ExpectedText(want) + "\nactual:   " + Truncate(r->body);
  return s;
}

int CheckAll(HttpClient& http, const std::string& token, const ReferenceModel& ref,
             const std::vector<MetricsCall>& calls, int max_failures) {
  int failures = 0;
  std::map<std::string, int> by_kind;  // a coarse histogram of the failing combinations
  for (const MetricsCall& c : calls) {
    std::string diff = CheckMetricsCall(http, token, ref, c);
    if (diff.empty()) continue;
    ++failures;
    by_kind[c.query.entity + "/" + c.query.metric + "/" + c.query.aggregation +
            "/group_by=" + (c.query.group_by.empty() ? "none" : c.query.group_by) + "/" +
            c.query.period + (c.query.user_id ? "/user" : "")]++;
    if (failures <= max_failures) ADD_FAILURE() << diff;
  }
  if (failures > 0) {
    std::string summary;
    for (const auto& [k, n] : by_kind) summary += "  " + k + ": " + std::to_string(n) + "\n";
    ADD_FAILURE() << failures << " of " << calls.size()
                  << " metrics requests differ from the reference (first " << max_failures
                  << " shown above); failing combinations:\n"
                  << summary;
  }
  return failures;
}

Dataset GenerateDataset(const gen::GenOptions& options, double max_duplicate_age_days) {
  Dataset d;
  gen::Generator g(options);
  gen::GeneratedLine line;
  int64_t newest = INT64_MIN;
  const int64_t max_age_ms = static_cast<int64_t>(max_duplicate_age_days * 86'400'000);
  while (g.Next(&line)) {
    RefEvent e;
    bool valid = RefValidate(line.json, &e).empty();
    if (line.duplicate) {
      if (!valid || e.time_ms < newest - max_age_ms) {
        ++d.dropped_duplicates;
        continue;
      }
      ++d.duplicates;
    } else if (valid) {
      newest = std::max(newest, e.time_ms);
    } else {
      ++d.malformed;
    }
    d.lines.push_back(line.json);
    d.keys.push_back(line.key);
  }
  return d;
}

Dataset Slice(const Dataset& data, size_t begin, size_t end) {
  end = std::min(end, data.lines.size());
  begin = std::min(begin, end);
  Dataset out;
  out.lines.assign(data.lines.begin() + begin, data.lines.begin() + end);
  out.keys.assign(data.keys.begin() + std::min(begin, data.keys.size()),
                  data.keys.begin() + std::min(end, data.keys.size()));
  return out;
}

Dataset SliceCursor::Take(size_t n) {
  Dataset d = Slice(*data_, next_, next_ + n);
  next_ += d.lines.size();
  taken_.insert(taken_.end(), d.lines.begin(), d.lines.end());
  return d;
}

gen::GenOptions StreamOptions(uint64_t seed, int64_t events, int workspaces, int users) {
  gen::GenOptions o;
  o.seed = seed;
  o.events = events;
  o.workspaces = workspaces;
  o.organizations = 3;
  o.users = users;
  o.end_day = Stack::kToday;
  o.days = 45;
  o.duplicate_fraction = 0.02;
  return o;
}

}  // namespace tally::integration
