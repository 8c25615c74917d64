#pragma once
// A brute-force reference of GET /api/agents/leaderboard over the accepted events, sharing no
// code with tally (nlohmann::json), for the end-to-end tests.
//
//   LeaderboardReference ref;
//   for (const std::string& line : accepted_lines) ref.Add(line);
//   json want = ref.Expected(ws, from_day, to_day, /*limit=*/10, std::nullopt);
//   EXPECT_TRUE(SameLeaderboard(got, want));

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "reference.h"

namespace tally::integration {

// A JSON user id as the leaderboard keys it (numbers as their decimal text).
std::optional<std::string> IdString(const nlohmann::json& v);
// obj[key] when it is a string, else "".
std::string OptString(const nlohmann::json& obj, const char* key);

using json = nlohmann::json;

class LeaderboardReference {
 public:
  // `line` must be an event the ReferenceModel accepted (valid, not a duplicate).
  void Add(const std::string& line) {
    json e = json::parse(line);
    const json& d = e["data"];
    const std::string ws = d["workspace_id"].get<std::string>();
    const std::string user = *IdString(d["user"]["id"]);
    const int64_t t = *RefParseTimeMillis(e["time"].get<std::string>());
    const int64_t day = t >= 0 ? t / 86'400'000 : -((-t + 86'399'999) / 86'400'000);
    if (e["type"] == "agent.created") created_[ws][user].push_back(day);
    Latest(&name_[{ws, user}], OptString(d["user"], "name"), t);
    Latest(&photo_[{ws, user}], OptString(d["user"], "photo"), t);
    Latest(&org_[ws], OptString(d, "organization_id"), t);
    workspaces_.insert(ws);
  }

  // Workspaces whose latest organization is `org`.
  std::vector<std::string> WorkspacesOf(const std::string& org) const {
    std::vector<std::string> out;
    for (const auto& [ws, v] : org_) {
      if (!v.value.empty() && v.value == org) out.push_back(ws);
    }
    return out;
  }
  std::set<std::string> Organizations() const {
    std::set<std::string> out;
    for (const auto& [ws, v] : org_) {
      if (!v.value.empty()) out.insert(v.value);
    }
    return out;
  }
  const std::set<std::string>& workspaces() const { return workspaces_; }
  std::vector<std::string> Creators(const std::string& ws) const {
    std::vector<std::string> out;
    auto it = created_.find(ws);
    if (it == created_.end()) return out;
    for (const auto& [user, days] : it->second) out.push_back(user);
    return out;
  }

  // The expected 200 body for [from, to] (days since the epoch, inclusive).
  json Expected(const std::string& ws, int64_t from, int64_t to, size_t limit,
                const std::optional<std::set<std::string>>& users) const {
    const int64_t n = to - from + 1;
    struct Row {
      std::string user;
      int64_t cur = 0, prev = 0;
    };
    std::vector<Row> rows;
    auto it = created_.find(ws);
    if (it != created_.end()) {
      for (const auto& [user, days] : it->second) {
        if (users && !users->count(user)) continue;
        Row r{user};
        for (int64_t d : days) {
          if (d >= from && d <= to) ++r.cur;
          if (d >= from - n && d <= from - 1) ++r.prev;
        }
        if (r.cur > 0 || r.prev > 0) rows.push_back(r);
      }
    }
    std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
      return a.cur != b.cur ? a.cur > b.cur : a.user < b.user;
    });
    json data = json::array();
    for (size_t i = 0; i < rows.size() && i < limit; ++i) {
      const Row& r = rows[i];
      int64_t rank = 1;
      for (const Row& o : rows) rank += o.cur > r.cur ? 1 : 0;
      json growth = nullptr;
      if (r.prev > 0) {
        growth = std::round(static_cast<double>(r.cur - r.prev) / r.prev * 100.0 * 100.0) / 100.0;
      }
      data.push_back({{"rank", rank},
                      {"user",
                       {{"id", RenderedId(r.user)},
                        {"name", Profile(name_, ws, r.user)},
                        {"photo", Profile(photo_, ws, r.user)}}},
                      {"agent_count", r.cur},
                      {"agent_count_previous_period", r.prev},
                      {"growth_percentage", growth}});
    }
    return json{{"data", data}};
  }

 private:
  struct Stamped {
    std::string value;
    int64_t time = INT64_MIN;
  };
  // Latest event time wins; on equal times the later line wins. Empty values never overwrite.
  static void Latest(Stamped* s, const std::string& value, int64_t t) {
    if (value.empty() || t < s->time) return;
    s->value = value;
    s->time = t;
  }
  static json Profile(const std::map<std::pair<std::string, std::string>, Stamped>& m,
                      const std::string& ws, const std::string& user) {
    auto it = m.find({ws, user});
    if (it == m.end() || it->second.value.empty()) return nullptr;
    return it->second.value;
  }
  // The documented rendering: canonical decimal integers that fit int64 become numbers.
  static json RenderedId(const std::string& id) {
    static const std::regex kCanonical("0|-?[1-9][0-9]{0,18}");
    if (std::regex_match(id, kCanonical)) {
      try {
        return std::stoll(id);
      } catch (const std::out_of_range&) {
      }
    }
    return id;
  }

  std::map<std::string, std::map<std::string, std::vector<int64_t>>> created_;  // ws, user
  std::map<std::pair<std::string, std::string>, Stamped> name_, photo_;
  std::map<std::string, Stamped> org_;
  std::set<std::string> workspaces_;
};

// Compares two leaderboard bodies; growth_percentage within 1e-9 (the reference rounds with
// doubles, tally with integers), everything else exactly.
::testing::AssertionResult SameLeaderboard(const json& got, const json& want);

}  // namespace tally::integration
