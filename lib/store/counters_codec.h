#pragma once
// Counters and user packs: the values of the "counters" and "userpacks" column families, the
// scoped keys they share with "bitmaps", and the roll-up of day keys into week and month keys.
// Pure functions, thread-safe; decoders never fail on stored data (false on malformed input).

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/calendar.h"
#include "common/saturating.h"
#include "event/usage_event.h"

namespace tally::store {

// ---------------------------------------------------------------------------------------------
// Counters (column family "counters", merge operator "tally.counters": field-wise addition).

// The dimension a counter or bitmap row belongs to.
enum class Scope : uint8_t {
  kWorkspace = 0,  // no extra id
  kUser = 1,       // extra id: the user's dense dictionary index (4 bytes); stored as packs
  kEntity = 2,     // extra id: entity kind byte + entity id
  kProject = 3,    // extra id: project id
};

struct Counters {
  static constexpr int kInts = 16;
  static constexpr int kDoubles = 4;
  // Integer fields 0..11: number of events per (entity kind, action).
  static constexpr int CountField(event::EntityKind kind, event::Action action) {
    return static_cast<int>(kind) * event::kActionCount + static_cast<int>(action);
  }
  static constexpr int kWorkflowDurationCount = 12;  // workflow.executed carrying duration_ms
  static constexpr int kAgentTokens = 13;
  static constexpr int kAgentErrors = 14;  // agent.executed with status "error"
  // Double fields.
  static constexpr int kWorkflowDurationSum = 0;  // sum of duration_ms, workflow.executed
  static constexpr int kAgentCost = 1;            // sum of cost_usd, agent.executed
  static constexpr int kAgentMessageCredits = 2;
  static constexpr int kAgentIntegrationCredits = 3;

  std::array<int64_t, kInts> i{};
  std::array<double, kDoubles> d{};

  // Field-wise saturating addition (common/saturating.h): a field never wraps around or
  // becomes infinite; each clamped field counts in tally::SaturatedSums().
  void Add(const Counters& o) {
    for (int k = 0; k < kInts; ++k) SatAddTo(&i[k], o.i[k]);
    for (int k = 0; k < kDoubles; ++k) SatAddTo(&d[k], o.d[k]);
  }
  bool IsZero() const;
};

// Appends the sparse encoding of `c` (field masks, zigzag varints, raw doubles).
void AppendCounters(const Counters& c, std::string* out);
std::string EncodeCounters(const Counters& c);
// Adds the counters encoded in `in` to *c (saturating, as Counters::Add). False (and *c
// unchanged) if `in` is malformed.
bool AddEncodedCounters(std::string_view in, Counters* c);

// Counter and bitmap keys share one layout:
//   tag | scope | ws | granularity | bucket | extra ids of the scope
// `extra` is the pre-encoded scope id (see ScopeId*), empty for kWorkspace.
void CounterKey(Scope scope, std::string_view workspace_id, Granularity g, int32_t bucket,
                std::string_view extra, std::string* out);
void BitmapKey(Scope scope, std::string_view workspace_id, Granularity g, int32_t bucket,
               std::string_view extra, std::string* out);

// Prefix of every counter key of (scope, ws, g, bucket): scan it to list all ids of a scope.
void CounterBucketPrefix(Scope scope, std::string_view workspace_id, Granularity g, int32_t bucket,
                         std::string* out);

// The day rows of the bucketed views (counters, scoped bitmaps, user packs, and the request
// slices with their users and pairs bitmaps) each add up into one week row and one month row: the
// same key with the (granularity, bucket) of the week and the month that hold the day. For the
// key of such a row at Granularity::kDay, writes those two keys to *week and *month and returns
// true; returns false for any other key (another granularity, a row without buckets, malformed).
bool RollUpKeys(std::string_view day_key, std::string* week, std::string* month);

// Pre-encoded scope ids (the `extra` argument above).
// Users are keyed by their dictionary index: 4 bytes instead of an arbitrary string keeps keys
// short (cheaper memtable inserts and scans) and makes per-user aggregation integer-keyed.
void ScopeIdUser(uint32_t user_index, std::string* out);
void ScopeIdEntity(event::EntityKind kind, std::string_view entity_id, std::string* out);
void ScopeIdProject(std::string_view project_id, std::string* out);

// ---------------------------------------------------------------------------------------------
// User packs (column family "userpacks", merge operator "tally.user_counters"): the Counters of
// every user of one (workspace, granularity, bucket) in ONE value, so that listing a workspace's
// users over a range reads a dozen values instead of one row per (user, bucket).
//   key    'K' | ws | granularity | bucket
//   value  entries in strictly increasing user index order, each
//          varint (user index - previous entry's index; the first: the index itself)
//          varint n | n bytes of AppendCounters
// Merging packs adds the Counters of equal user indexes (MergeUserPacks).

void UserPackKey(std::string_view workspace_id, Granularity g, int32_t bucket, std::string* out);

// Builds one pack value. Entries must be added in strictly increasing user order.
class UserPackWriter {
 public:
  // Starts a new value in *out (cleared); `out` must outlive the writer's use.
  explicit UserPackWriter(std::string* out) : out_(out) { out_->clear(); }
  void Add(uint32_t user, const Counters& c);
  // Adds an entry whose counters are already encoded (AppendCounters bytes).
  void AddEncoded(uint32_t user, std::string_view counters);

 private:
  std::string* out_;
  std::string scratch_;  // Add's encoding of one entry's counters
  uint32_t last_ = 0;
  bool first_ = true;
};

// Calls fn(user, encoded_counters) for each entry of `pack`, in user order (decode the counters
// with AddEncodedCounters). False if `pack` is malformed; the entries before the fault were
// delivered.
template <typename Fn>
bool ForEachUserPackEntry(std::string_view pack, Fn&& fn);

// The encoded counters of `user` in `pack`, scanning in user order up to it; false if absent
// (or `pack` is malformed before it).
bool FindUserPackEntry(std::string_view pack, uint32_t user, std::string_view* counters);

// Merges packs into *out (cleared first): one entry per user index present in any input, with
// the Counters of that index added up (saturating). A malformed input contributes the entries
// before its fault. Returns the number of malformed inputs (0 normally). Never fails.
int MergeUserPacks(const std::string_view* packs, size_t n, std::string* out);

// Reads one pack entry from the front of *in: false if malformed. `user` carries the previous
// index in and the entry's index out (start with `first` = true).
bool NextUserPackEntry(std::string_view* in, bool first, uint32_t* user,
                       std::string_view* counters);

template <typename Fn>
bool ForEachUserPackEntry(std::string_view pack, Fn&& fn) {
  uint32_t user = 0;
  std::string_view counters;
  for (bool first = true; !pack.empty(); first = false) {
    if (!NextUserPackEntry(&pack, first, &user, &counters)) return false;
    fn(user, counters);
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Bitmaps (column family "bitmaps", merge operator "tally.bitmap_or"): portable-serialized
// Roaring bitmaps of dictionary-encoded user ids, merged with OR.

}  // namespace tally::store
