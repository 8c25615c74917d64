#pragma once
// Which agents and user profiles recent store writes touched, by workspace, so that a reader
// holding in-memory views computed from the store at version S (ReadView::version) can bring them
// to a later version S' by re-reading only what changed (query/superagents.cpp does).
//
//   // writer (Store::Write does this under its write lock):
//   tally::store::WriteNote note;               // what the write touched
//   note.record_keys = {...};
//   log.Record(before_version, after_version, &note);  // null: "unknown changes"
//   // reader:
//   tally::store::ChangeLog::Touched t;
//   if (store.changes().Collect("ws_1", cached_version, view->version(), &t)) {
//     // t.agents, t.agent_rows, t.users, [t.first_day, t.last_day]: everything of ws_1 that
//     // may differ between the two states
//   } else {
//     // not provable from the log (too old, or a write without a note): recompute everything
//   }
//
// Exactness: an entry covers the versions (before, after] of one write. Collect succeeds
// only when the recorded entries chain without a gap from S to S', so a write the log did not
// see (or one recorded without its touched keys) makes it fail rather than miss a change.
//
// Thread-safety: thread-safe.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <limits>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/calendar.h"

namespace tally::store {

// What one write touched, as its writer describes it to ChangeLog::Record (Store::Write and
// Store::Stage pass it on). The writer guarantees every statement below; a write it cannot
// describe passes no note at all.
struct WriteNote {
  // Every records-CF key the write merged into, and the record key of every entity whose
  // counter or bitmap rows it changed (agent rows and user profiles are the ones that count:
  // codec.h ParseRecordKey).
  std::vector<std::string_view> record_keys;
  // Parallel to record_keys, or empty (= all 1): 0 when the write left that record's fields as
  // they were and names it only for the entity's usage rows.
  std::vector<uint8_t> fields_changed;
  // Every counter and bitmap row the write changed is of a bucket (day, ISO week or month) that
  // contains a day in [first_day, last_day]; first_day > last_day when it changed none.
  DayNumber first_day = std::numeric_limits<DayNumber>::min();
  DayNumber last_day = std::numeric_limits<DayNumber>::max();
};

class ChangeLog {
 public:
  // Bounds: entries kept (oldest dropped first), and ids kept over all entries (about 50 bytes
  // each: the default holds a few dozen large ingest batches in about 13 MB). A reader whose
  // state is older than the oldest entry recomputes.
  explicit ChangeLog(size_t max_entries = 512, size_t max_ids = 256'000)
      : max_entries_(max_entries), max_ids_(max_ids) {}

  // Records one write that moved the store from version `before` to `after`; `note` says what
  // it touched (null when unknown).
  void Record(uint64_t before, uint64_t after, const WriteNote* note);

  struct Touched {
    // Agent ids whose row or usage (counters, bitmaps) may have changed; sorted, distinct.
    std::vector<std::string> agents;
    // Those of `agents` whose row fields may have changed; sorted, distinct.
    std::vector<std::string> agent_rows;
    // User ids whose profile fields may have changed; sorted, distinct.
    std::vector<std::string> users;
    // Every counter or bitmap row that may have changed is of a bucket containing a day in
    // [first_day, last_day] (first_day > last_day: none changed).
    DayNumber first_day = 0, last_day = -1;
  };
  // Fills *out with what writes in (from, to] touched in `workspace_id`. False (and *out
  // unspecified) unless recorded entries with known keys chain exactly from `from` to `to`.
  // from == to is true with nothing touched.
  bool Collect(std::string_view workspace_id, uint64_t from, uint64_t to, Touched* out) const;

 private:
  struct Entry {
    uint64_t before = 0, after = 0;
    bool known = false;
    size_t ids = 0;
    DayNumber first_day = 0, last_day = -1;
    std::unordered_map<std::string, Touched> workspaces;  // unsorted, may repeat; no days
  };

  const size_t max_entries_, max_ids_;
  mutable std::mutex mu_;
  std::deque<Entry> entries_;  // increasing versions
  size_t ids_ = 0;
};

}  // namespace tally::store
