#pragma once
// Request-analytics slices: the values and keys of the "requests" column family and the keys of
// their users and pairs bitmaps. Pure functions, thread-safe; decoders never fail on stored data.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/calendar.h"

namespace tally::store {

// ---------------------------------------------------------------------------------------------
// Request analytics (column family "requests", merge operator "tally.slices"; user and pair
// bitmaps in "bitmaps"). Only agent.executed events with an organization_id feed these views.
//
// A *slice* is the stats of the requests of one organization, narrowed to one agent or not and to
// one project or not, in one (granularity, bucket):
//   key   'S' | org | agent selector | project selector | granularity | bucket
//   value totals + per-user stats (sorted by user index) + per-agent stats (sorted by agent index)
// The selectors: 0x00 = all, or 0x01 then the agent's dense index (4 bytes, big-endian) / the
// project id (length-prefixed). Granularity and bucket come last, so the day slices of one
// selection are contiguous (per-day series are one scan) and a key is rebucketed by replacing its
// last 5 bytes.
// The matching bitmaps have the same layout with tags 'X' (users of the slice) and 'Y' (agent x
// user pairs, dictionary-encoded, for slices of all agents only).

// Every field is a non-negative sum; additions saturate at INT64_MAX (common/saturating.h), for
// the uint64_t fields too, so that every field also reads correctly as an int64_t.
struct SliceTotals {
  uint64_t requests = 0;
  uint64_t errors = 0;  // status == "error"
  uint64_t tokens = 0;
  // cost_usd in nano-dollars: integer sums are exact and independent of batching, so a rebuild
  // answers exactly like live ingest did.
  int64_t cost_nanos = 0;
};
struct SliceUser {
  uint32_t user = 0;  // dense user index
  uint64_t requests = 0;
  uint64_t tokens = 0;
  int64_t cost_nanos = 0;
};
struct SliceAgent {
  uint32_t agent = 0;  // dense agent index
  uint64_t requests = 0;
  uint64_t tokens = 0;
};

// A decoded (or in-construction) slice. Normalize() sorts and combines entries by index; the
// encoders require normalized slices.
struct Slice {
  SliceTotals totals;
  std::vector<SliceUser> users;
  std::vector<SliceAgent> agents;

  void Clear();
  // Adds all of `o` (entries appended; call Normalize before encoding). Totals saturate.
  void Append(const Slice& o);
  // Sorts entries and combines those of equal index (saturating sums).
  void Normalize();
};

// Nano-dollars of a cost_usd value (rounded to the nearest). Accepted events carry at most
// event::kMaxCostUsd (10^15 nanos); larger, infinite or NaN inputs give INT64_MAX (counted as a
// saturation), negative ones 0.
int64_t CostNanos(double usd);

// Encoding: version byte 1, totals (3 x u64, i64), varint n + n x 28-byte users, varint m + m x
// 20-byte agents, all little-endian.
void AppendSlice(const Slice& s, std::string* out);
// Appends the decoded entries of `in` to *s (Normalize afterwards; totals added saturating).
// False (s unchanged) if malformed.
bool AppendEncodedSlice(std::string_view in, Slice* s);

// A zero-copy reader of an encoded slice; valid while the bytes it was parsed from live.
class SliceView {
 public:
  // False if `in` is malformed (the view is then empty).
  bool Parse(std::string_view in);
  const SliceTotals& totals() const { return totals_; }
  size_t user_count() const { return user_count_; }
  size_t agent_count() const { return agent_count_; }
  SliceUser user(size_t i) const;
  SliceAgent agent(size_t i) const;

 private:
  SliceTotals totals_;
  const char* users_ = nullptr;
  const char* agents_ = nullptr;
  size_t user_count_ = 0, agent_count_ = 0;
};

inline constexpr uint32_t kAllAgents = UINT32_MAX;  // agent selector "all"

// Key of a slice (tag 'S'), users bitmap ('X') or pairs bitmap ('Y'). `agent` kAllAgents selects
// all agents; `project` null selects all projects.
void RequestsSliceKey(std::string_view org, uint32_t agent, const std::string_view* project,
                      Granularity g, int32_t bucket, std::string* out);
void RequestsUsersKey(std::string_view org, uint32_t agent, const std::string_view* project,
                      Granularity g, int32_t bucket, std::string* out);
void RequestsPairsKey(std::string_view org, const std::string_view* project, Granularity g,
                      int32_t bucket, std::string* out);
// The users bitmap key of a slice key, and the pairs bitmap key of an all-agents slice key (false
// for a malformed key or, for pairs, a per-agent slice key). Same order as the slice keys.
bool RequestsUsersKeyOf(std::string_view slice_key, std::string* out);
bool RequestsPairsKeyOf(std::string_view slice_key, std::string* out);
// The (granularity, bucket) of a requests key. False if malformed.
bool RequestsKeyBucket(std::string_view key, Granularity* g, int32_t* bucket);
// Prefix of every slice key of (org, agent selector) for a specific project: followed by the
// length-prefixed project id. Used to enumerate the projects of an organization.
void RequestsProjectsPrefix(std::string_view org, uint32_t agent, std::string* out);
// Prefix of every slice key of an organization (does it have any request data?).
void RequestsOrgPrefix(std::string_view org, std::string* out);
// For a slice key under RequestsProjectsPrefix: `rest` is the key with that prefix removed.
bool DecodeRequestsProject(std::string_view rest, std::string_view* project, Granularity* g,
                           int32_t* bucket);

}  // namespace tally::store
