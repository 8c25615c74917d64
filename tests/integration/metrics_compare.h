#pragma once
// Asking tallyd's GET/POST /api/v1/workspaces/metrics and comparing the answer with the
// reference model, with a readable diff on mismatch.
//
//   std::vector<MetricsCall> calls = AllCombinations("ws-1", "user-7");
//   for (const MetricsCall& c : calls) {
//     std::string diff = CheckMetricsCall(stack.http(), token, ref, c);
//     if (!diff.empty()) ADD_FAILURE() << diff;
//   }

#include <optional>
#include <string>
#include <vector>

#include "gen/generator.h"
#include "harness.h"
#include "reference.h"

namespace tally::integration {

enum class RequestForm { kGetBody, kPostBody, kQueryParams, kQueryParamsAliases };
const char* RequestFormName(RequestForm form);

struct MetricsCall {
  RefQuery query;
  // granularity as sent: nullopt = not sent (only meaningful without group_by=date).
  std::optional<std::string> granularity;
  int limit = 100;
  RequestForm form = RequestForm::kGetBody;
};

// True for the combinations the API forbids (422): avg_duration for agents, or with group_by.
bool SeedRejects(const RefQuery& q);

// Every entity x metric x aggregation x group_by x granularity (absent/daily/weekly/monthly,
// only the three for group_by=date) x period, each without and (when `user_id` is non-empty)
// with filters.user_id. The form cycles through GET body and POST body.
std::vector<MetricsCall> AllCombinations(const std::string& workspace_id,
                                         const std::string& user_id);

// The request as an HTTP method, target and body (for sending and for failure messages).
struct WireRequest {
  std::string method;
  std::string target;
  std::string body;
};
WireRequest BuildRequest(const MetricsCall& call);

// Sends `call` with `Authorization: Bearer <token>` and compares it with `ref`. Returns "" when
// the answer matches (or is the expected 422 of a combination the API forbids), else a
// description: the request, the expected (reference) answer and the actual response.
std::string CheckMetricsCall(HttpClient& http, const std::string& token, const ReferenceModel& ref,
                             const MetricsCall& call);

// Runs every call; reports at most `max_failures` diffs through ADD_FAILURE and a summary.
// Returns the number of mismatches.
int CheckAll(HttpClient& http, const std::string& token, const ReferenceModel& ref,
             const std::vector<MetricsCall>& calls, int max_failures = 15);

// Generated lines ready to produce (key = workspace id).
struct Dataset {
  std::vector<std::string> lines;
  std::vector<std::string> keys;
  size_t malformed = 0;
  size_t duplicates = 0;          // verbatim repeats kept
  size_t dropped_duplicates = 0;  // repeats left out (see GenerateDataset)
};

// Runs the generator. A verbatim duplicate whose event time is more than `max_duplicate_age_days`
// older than the newest event generated so far is left out, so that every duplicate tallyd sees
// lies inside its dedupe window (7 days of event time; older entries may be compacted away, and
// an event re-sent after that legitimately counts again).
Dataset GenerateDataset(const gen::GenOptions& options, double max_duplicate_age_days = 4);

// Lines (and their keys) [begin, end) of `data`, `end` clamped to its size; the counters are
// left at 0.
Dataset Slice(const Dataset& data, size_t begin, size_t end);

// Hands out consecutive slices of a dataset (chunks to produce between faults) and keeps every
// line handed out: what the log holds once they are produced, for the references.
class SliceCursor {
 public:
  explicit SliceCursor(const Dataset* data) : data_(data) {}
  // The next `n` lines (fewer at the end); Rest(): all that is left.
  Dataset Take(size_t n);
  Dataset Rest() { return Take(data_->lines.size() - next_); }
  const std::vector<std::string>& taken() const { return taken_; }

 private:
  const Dataset* data_;
  size_t next_ = 0;
  std::vector<std::string> taken_;
};

// The generator options of the fault tests' streams: `events` lines over `workspaces`
// workspaces of 3 organizations and `users` users, 45 days ending at Stack::kToday, 2 %
// verbatim duplicates.
gen::GenOptions StreamOptions(uint64_t seed, int64_t events, int workspaces, int users);

}  // namespace tally::integration
