#pragma once
// A deliberately simple reference model of the workspace metrics API, for end-to-end tests.
//
//   tally::integration::ReferenceModel ref("2026-03-01");      // "today" of the frozen clock
//   for (const std::string& line : ndjson_lines) ref.Add(line);  // exactly what went to Kafka
//   tally::integration::RefQuery q;
//   q.workspace_id = "ws-1"; q.entity = "agents"; q.metric = "executions";
//   q.aggregation = "count"; q.group_by = "date"; q.granularity = "weekly"; q.period = "30d";
//   tally::integration::RefAnswer a = ref.Answer(q);          // total + every row, brute force
//
// It shares no code with tally: lines are parsed with nlohmann::json, times are converted with
// timegm(), week/month labels come from strftime("%G-%V") / ("%Y-%m"), and every answer is a
// scan over the accepted event list. It is meant to be obviously right rather than fast.
//
// Semantics (docs/design.md "What counts as what" and "API semantics"):
//  - An invalid line (docs/design.md "The usage event" rules, or more than 64 KiB) is dropped.
//  - The first occurrence of a (source, id) pair wins; later ones are dropped (the test data
//    keeps every duplicate inside the dedupe window, so a plain set is exact).
//  - executions/created/copies/shares = the entity kind's executed/created/copied/shared events;
//    avg_duration = the kind's executed events that carry duration_ms.
//  - count = number of events; sum = sum of the measure (1 per event, duration_ms for
//    avg_duration); avg = sum / count, 0 when there is no event.
//  - period "Nd" = the N UTC days ending today inclusive; "all" = from the workspace's first day
//    with any accepted event (of any type) to today.
//  - group_by "date": every bucket of the period in ascending order, zero-filled; a bucket only
//    counts the days inside the period. group_by "user": every user with at least one event in
//    the period, ordered by value descending then user id ascending; user_name is the name of
//    the user's latest event (by event time; later in the log on ties) in this workspace that
//    carried a non-empty name, "" if none.
//
// Not thread-safe for concurrent Add(); Answer() is const and may run concurrently.

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tally::integration {

// The largest message the event contract accepts (docs/design.md: oversized messages are rejected).
inline constexpr size_t kRefMaxEventBytes = 64 * 1024;

struct RefQuery {
  std::string workspace_id;
  std::string entity = "agents";       // agents | workflows
  std::string metric = "executions";   // executions | created | copies | shares | avg_duration
  std::string aggregation = "count";   // count | sum | avg
  std::string group_by;                // "" (none) | user | date
  std::string granularity = "daily";   // daily | weekly | monthly (used by group_by=date)
  std::string period = "30d";          // 7d | 30d | 90d | all
  std::optional<std::string> user_id;  // filters.user_id
};

struct RefRow {
  std::string key;        // user id (group_by=user) or bucket label (group_by=date)
  std::string user_name;  // group_by=user only
  double value = 0;
};

struct RefAnswer {
  double total = 0;
  std::vector<RefRow> rows;  // every row (no limit applied)
  std::string from;          // meta.period.from, "YYYY-MM-DD"
  std::string to;            // meta.period.to
};

// kRefused: valid, but it names another organization than the one its workspace is bound to
// (the first accepted event naming one binds it): tallyd dead-letters it.
enum class RefVerdict { kAccepted, kInvalid, kDuplicate, kRefused };

// Workspace -> organization bindings, as docs/design.md ("Tenants") states them: the first
// accepted event naming an organization binds its workspace (duplicates included); an event
// naming another one is refused. Events without an organization are never refused.
class RefBindings {
 public:
  // True if the event must be refused; otherwise binds an unbound workspace.
  bool Refuses(const std::string& workspace_id, const std::string& organization_id) {
    if (organization_id.empty()) return false;
    auto [it, inserted] = bound_.try_emplace(workspace_id, organization_id);
    return it->second != organization_id;
  }

 private:
  std::map<std::string, std::string> bound_;
};

// One accepted event, reduced to what the workspace metrics API reads.
struct RefEvent {
  std::string source;
  std::string id;
  std::string workspace_id;
  std::string organization_id;  // "" when absent
  std::string kind;             // "agent" | "workflow"
  std::string action;  // "created" | "updated" | "deleted" | "executed" | "copied" | "shared"
  std::string user_id;
  std::string user_name;  // "" when absent
  int64_t time_ms = 0;
  int64_t day = 0;  // UTC days since 1970-01-01
  std::optional<double> duration_ms;
};

// Validates one raw message by docs/design.md's rules. On success fills `*out` and returns "", else
// returns a short reason naming the field at fault (for test diagnostics only).
std::string RefValidate(std::string_view line, RefEvent* out);

// RFC 3339 date-time to UTC epoch milliseconds, by sscanf + timegm; nullopt if invalid.
std::optional<int64_t> RefParseTimeMillis(const std::string& text);

// "YYYY-MM-DD" to UTC days since 1970-01-01; nullopt if invalid.
std::optional<int64_t> RefParseDay(const std::string& text);

// Labels of a UTC day: "YYYY-MM-DD", ISO "YYYY-WW" (ISO week-year), "YYYY-MM".
std::string RefDayLabel(int64_t day);
std::string RefBucketLabel(int64_t day, const std::string& granularity);

class ReferenceModel {
 public:
  // `today` is "YYYY-MM-DD" (the UTC day of tallyd's --now). Aborts the test on a bad date.
  explicit ReferenceModel(const std::string& today);

  // Feeds one raw message, exactly as produced to Kafka.
  RefVerdict Add(std::string_view line);

  RefAnswer Answer(const RefQuery& q) const;

  // Workspaces ordered by number of accepted events, most first.
  std::vector<std::string> WorkspacesByActivity() const;
  // Users of a workspace ordered by number of accepted events, most first.
  std::vector<std::string> UsersByActivity(const std::string& workspace_id) const;

  const std::vector<RefEvent>& events() const { return events_; }
  int64_t today() const { return today_; }
  size_t accepted() const { return events_.size(); }
  size_t invalid() const { return invalid_; }
  size_t duplicates() const { return duplicates_; }
  size_t refused() const { return refused_; }

 private:
  int64_t today_ = 0;
  std::vector<RefEvent> events_;
  std::set<std::pair<std::string, std::string>> seen_;  // (source, id)
  RefBindings bindings_;
  size_t invalid_ = 0;
  size_t duplicates_ = 0;
  size_t refused_ = 0;
};

}  // namespace tally::integration
