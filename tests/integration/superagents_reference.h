#pragma once
// A brute-force reference of GET /api/v1/monitoring/{workspace_id}/superagents over accepted
// events, sharing no code with tally (nlohmann::json), for the end-to-end tests.
//
//   SuperagentsReference ref;
//   for (const std::string& line : accepted_lines) {
//     if (auto e = SuperagentsEventOf(line)) ref.Add(*e);
//   }
//   std::vector<json> want = ref.Rows(ws, from_day, to_day, "-total_credits_consumed", "", "",
//                                     today);
//   // compare with NormalizeSuperagents(json::parse(body))["superagents"], page by page

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace tally::integration {

// What Super Agents reads of one agent event.
struct SuperagentsEvent {
  std::string ws;
  std::string type;  // agent.created, ...
  std::string time;  // RFC 3339
  std::string user;
  std::string email;  // "" = not sent
  std::string agent;
  std::string name, visibility, owner;    // "" = not sent
  double message = -1, integration = -1;  // < 0 = not sent
};

// The SuperagentsEvent of a raw event line (an event the ReferenceModel accepted); nullopt for
// events that are not about agents.
std::optional<SuperagentsEvent> SuperagentsEventOf(const std::string& line);

class SuperagentsReference {
 public:
  void Add(const SuperagentsEvent& e);

  // Every matching row, sorted as tally documents it (`sort`: a field, "-" first for
  // descending; ties by superagent_id ascending). Days are days since the epoch (UTC); credits
  // count over [from, to], active users over the 30 days ending `today`. created_at is in epoch
  // seconds (see NormalizeSuperagents).
  std::vector<nlohmann::json> Rows(const std::string& ws, int64_t from, int64_t to,
                                   const std::string& sort, const std::string& search,
                                   const std::string& visibility, int64_t today) const;

 private:
  struct Latest {
    std::string value;
    int64_t t = INT64_MIN;
    void Set(const std::string& v, int64_t time) {
      if (!v.empty() && time >= t) {
        value = v;
        t = time;
      }
    }
  };
  struct Agent {
    Latest name, visibility, owner;
    std::optional<int64_t> created;  // earliest created/copied
    std::string created_by;
    std::optional<int64_t> deleted, revived;
    std::map<int64_t, std::pair<double, double>> credits;  // day -> (message, integration)
    std::map<int64_t, std::set<std::string>> executors;    // day -> users
  };
  std::map<std::string, std::map<std::string, Agent>> agents_;
  std::map<std::pair<std::string, std::string>, Latest> emails_;
};

// A Super Agents body with every row's created_at (RFC 3339) turned into epoch seconds, as the
// reference keeps it.
nlohmann::json NormalizeSuperagents(nlohmann::json body);

}  // namespace tally::integration
