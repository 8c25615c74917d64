#pragma once
// Deterministic synthetic usage events as NDJSON lines (CloudEvents, see docs/design.md).
//
//   tally::gen::GenOptions opts;
//   opts.events = 1000;
//   opts.end_day = "2026-01-31";        // fix the day range for reproducible output
//   opts.malformed_fraction = 0.01;
//   tally::gen::Generator gen(opts);
//   tally::gen::GeneratedLine line;     // reuse it: Next() recycles its buffers
//   while (gen.Next(&line)) producer.Produce("usage-events", line.key, line.json);
//
// Same options (including end_day) => byte-identical output. With end_day empty the range ends
// today (UTC) and no event time lies in the future.
//
// Two mixes: Mix::kDefault (every event type, see README.md) and Mix::kExecutions, where every
// valid line is an `agent.executed` carrying every optional field that feeds a view
// (organization, project, the user's and the agent's profiles, tokens, cost, credits), the
// costliest event to store. Start from MixDefaults(mix) for that mix's sizes.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/result.h"

namespace tally::gen {

enum class Mix : uint8_t {
  kDefault = 0,  // every event type, entities created before use (README.md)
  kExecutions,   // only agent.executed with every optional field; users Pareto-skewed
};

// The mix named "default" or "executions"; kInvalidArgument (field "mix") for any other name.
Result<Mix> ParseMix(std::string_view name);

struct GenOptions {
  Mix mix = Mix::kDefault;
  uint64_t seed = 42;
  int64_t events = 100000;  // number of lines produced, duplicates and malformed included
  // Event ids are "evt_<seed>_<n>" with n counting from this: a second stream with the same seed
  // (the same workspaces, users and agents) and ids that do not repeat the first's.
  int64_t first_id = 0;
  int workspaces = 20;
  int organizations = 5;  // each workspace belongs to one ("org_1".."org_N")
  int projects_per_workspace = 5;
  // Each user belongs to 1-2 workspaces. Activity: Zipf-skewed in the default mix; in the
  // executions mix each user's weight is drawn from a Pareto distribution (shape 1.16, the
  // "80/20" rule, bounded at 1000x the smallest weight).
  int users = 2000;
  int agents = 500;     // each belongs to one workspace; Zipf-skewed usage
  int workflows = 200;  // idem; must be 0 in the executions mix
  // Default mix: entities are scaled down when they would exceed 8% of `events`, so that small
  // streams are still mostly executions. The executions mix has no lifecycle events: every
  // agent exists from the start.
  std::string end_day;            // "YYYY-MM-DD"; empty = today UTC
  int days = 120;                 // event times spread over the `days` days ending at end_day
  double duplicate_fraction = 0;  // lines re-emitting an earlier valid line verbatim
  double malformed_fraction = 0;  // lines that tally must dead-letter
  // Executed events name their agent or workflow by id only (no name, visibility or owner), as
  // producers that do not track them send them: such a stream, sent after a history generated
  // with other options, does not contradict the names and owners that history gave.
  bool bare_executions = false;
};

// The defaults of a mix: GenOptions{} for kDefault; for kExecutions 20 workspaces in 5
// organizations, 1,000 agents, no workflows, 10,000 users, 90 days.
GenOptions MixDefaults(Mix mix);

// kInvalidArgument (Error::field names the option) for: negative events, fewer than one
// workspace/organization/project/user/day, negative agents or workflows, none of both, a
// fraction outside [0, 1] or fractions summing above 1, an end_day that is not YYYY-MM-DD; in
// the executions mix, no agents or any workflows.
Status ValidateGenOptions(const GenOptions& options);

// Why a malformed line must be rejected. Malformed lines cycle through the kinds in this order.
enum class MalformedKind : uint8_t {
  kNone = 0,            // a valid line
  kInvalidJson,         // syntax error (missing comma)
  kTruncatedJson,       // a valid event cut in half
  kMissingId,           // no "id"
  kMissingWorkspaceId,  // no data.workspace_id
  kMissingUserId,       // data.user without "id"
  kMissingEntityId,     // agent.* event whose data.agent has no "id"
  kIllTypedField,       // "tokens":"many"
  kBadTime,             // "time" not RFC 3339 ("yesterday", month 13)
  kUnknownType,         // "agent.exploded"
  kNegativeNumber,      // "cost_usd":-1
  kWrongSpecVersion,    // "specversion":"0.3"
  kOversized,           // > 64 KiB (a huge user name)
  kNotAnObject,         // a JSON array, string or number
};
inline constexpr int kMalformedKindCount = 13;  // kinds other than kNone

// "none", "invalid_json", ..., "not_an_object". Never null.
const char* MalformedKindName(MalformedKind kind);

struct GeneratedLine {
  std::string json;  // one NDJSON line without the trailing newline
  // Suggested message key: data.workspace_id; empty when the line has none or does not parse.
  std::string key;
  bool malformed = false;
  MalformedKind malformed_kind = MalformedKind::kNone;
  bool duplicate = false;  // a verbatim repeat (same source and id) of an earlier valid line
};

// Not thread-safe; use one generator per thread (different seeds for different streams).
class Generator {
 public:
  // Out-of-range options are clamped to the nearest valid value (call ValidateGenOptions first
  // to report them instead); an unparsable end_day means today.
  explicit Generator(GenOptions options);
  ~Generator();
  Generator(Generator&&) noexcept;
  Generator& operator=(Generator&&) noexcept;

  // Writes the next line into *out (replacing its contents, reusing its capacity). Returns
  // false, leaving *out untouched, once options.events lines have been produced.
  bool Next(GeneratedLine* out);

  int64_t produced() const;           // lines produced so far
  const GenOptions& options() const;  // the options after clamping

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tally::gen
