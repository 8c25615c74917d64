#pragma once
// What recent store writes did to agent rows, user profiles and agents' usage, by workspace, so
// that a reader holding in-memory views computed from the store at version S
// (ReadView::version) can bring them to a later version S' from what changed instead of
// re-reading the store (query/superagents.cpp does).
//
//   // writer (Store::Write does this under its write lock):
//   tally::store::WriteNote note;                       // what the write did
//   note.record_keys = {...};
//   log.Record(before_version, after_version, &note);  // null: "unknown changes"
//   // reader:
//   bool ok = store.changes().Collect("ws_1", cached_version, view->version(),
//                                     [&](const tally::store::ChangeLog::Change& c) {
//     // c.kind, c.id, c.fields, c.usage: one write's doing to one agent or profile of ws_1
//   });
//   if (!ok) { /* not provable from the log (too old, or a write without a note): recompute */ }
//
// Exactness: an entry covers the versions (before, after] of one write. Collect succeeds
// only when the recorded entries chain without a gap from S to S', so a write the log did not
// see (or one recorded without a note) makes it fail rather than miss a change.
//
// Thread-safety: thread-safe.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/calendar.h"
#include "store/counters_codec.h"
#include "store/record_codec.h"

namespace tally::store {

class UserBitmap;

// One field a write merged into a record (record_codec.h field ids), without its time.
struct NoteField {
  uint8_t id = 0;
  std::string_view value;
};

// What a write added to the counter and bitmap rows of one entity for one day (its day row, and
// the week and month rows holding that day).
struct NoteUsage {
  uint32_t record = 0;  // the entity's record key: an index into WriteNote::record_keys
  DayNumber day = 0;
  const Counters* counters = nullptr;  // added to its counter rows
  const UserBitmap* users = nullptr;   // ORed into its bitmap rows; null: none
};

// What one write did, as its writer describes it to ChangeLog::Record (Store::Write and
// Store::Stage pass it on). The writer guarantees every statement below; a write it cannot
// describe passes no note at all. Views and pointers need to last only for the call.
struct WriteNote {
  // Every records-CF key the write merged into, and the record key of every entity whose
  // counter or bitmap rows it changed (agent rows and user profiles are the ones the log keeps:
  // record_codec.h ParseRecordKey).
  std::vector<std::string_view> record_keys;
  // Parallel to record_keys: the fields merged into each record (each field id once: the
  // write's winner under MergeField's rules); empty when it names the record only for the
  // entity's usage.
  std::vector<std::span<const NoteField>> fields;
  // Every change to the counter and bitmap rows of every entity (an entity's changes for one
  // day at most once).
  std::vector<NoteUsage> usage;
};

class ChangeLog {
 public:
  // Bounds: entries kept (oldest dropped first), and changes kept over all entries (a few
  // hundred bytes each with their usage: the default holds a few dozen large ingest batches in
  // some tens of MB). A reader whose state is older than the oldest entry recomputes.
  explicit ChangeLog(size_t max_entries = 512, size_t max_changes = 256'000)
      : max_entries_(max_entries), max_changes_(max_changes) {}

  // Records one write that moved the store from version `before` to `after`; `note` says what
  // it did (null when unknown). Keeps what `note` says of agent rows and user profiles.
  void Record(uint64_t before, uint64_t after, const WriteNote* note);

  // One write's doing to one agent row (with the agent's usage) or one user profile.
  struct Usage {
    DayNumber day = 0;
    const Counters* counters = nullptr;
    std::span<const uint32_t> users;  // user indexes added to its bitmap rows, increasing
  };
  struct Change {
    RecordKeyRef::Kind kind = RecordKeyRef::Kind::kAgent;  // kAgent or kProfile
    std::string_view id;                                   // the agent or user id
    std::span<const NoteField> fields;
    std::span<const Usage> usage;  // agents only
  };
  // Calls fn for every change the writes in (from, to] made in `workspace_id`, in write order
  // (views valid during the call; fn must not call back into the log). False, without calling
  // fn, unless recorded entries with notes chain exactly from `from` to `to`. from == to is
  // true with no call.
  bool Collect(std::string_view workspace_id, uint64_t from, uint64_t to,
               const std::function<void(const Change&)>& fn) const;

 private:
  struct Ref {
    uint32_t off = 0, len = 0;  // in Entry::text
  };
  struct StoredChange {
    RecordKeyRef::Kind kind;
    Ref workspace, id;
    uint32_t fields_begin, fields_end, usage_begin, usage_end;
  };
  struct StoredField {
    uint8_t id;
    Ref value;
  };
  struct StoredUsage {
    DayNumber day;
    Counters counters;
    uint32_t users_begin, users_end;  // in Entry::users
  };
  struct Entry {
    uint64_t before = 0, after = 0;
    bool known = false;
    std::string text;  // every id and value of the entry
    std::vector<StoredChange> changes;
    std::vector<StoredField> fields;
    std::vector<StoredUsage> usage;
    std::vector<uint32_t> users;
  };

  const size_t max_entries_, max_changes_;
  mutable std::mutex mu_;
  std::deque<Entry> entries_;  // increasing versions
  size_t changes_ = 0;
};

}  // namespace tally::store
