#pragma once
// The reference model of the Stage tests (stage_test.cpp, stage_roll_up_test.cpp,
// stage_read_test.cpp): the keys the random write sets touch (Universe), what a store must hold
// after them, computed with plain containers (Model), the random sets (Generator), every read of
// a view and of the writer as text lines (ViewLines, WriterLines) with what the model says they
// must read (ModelViewLines, ModelWriterLines), and the fixture.
//
// Reads are compared as text lines of decoded values (never raw bytes: equal values may be
// encoded differently).

#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "store/bitmap.h"
#include "store/codec.h"
#include "store/internal/store_rep.h"
#include "store/store.h"
#include "store/write_set.h"

namespace tally::store::stage_test {

using Lines = std::vector<std::string>;

// ------------------------------------------------------------------------ decoded values as text

std::string Hex(std::string_view s);
std::string Text(const Counters& c);
// Per-user counters of a pack; `ordered` false if the entries were not in increasing user order.
std::string PackText(const std::map<uint32_t, Counters>& users, bool ordered = true);
std::string BitmapText(const std::vector<uint32_t>& ids);
std::string BitmapText(const UserBitmap& b);
std::string RecordText(const Record& r);
std::string SliceText(const SliceTotals& t, const std::vector<SliceUser>& users,
                      const std::vector<SliceAgent>& agents);
std::string SliceText(const SliceView& s);
std::string Found(bool found);
std::string LimitText(size_t limit);
// Expects `got` to equal `want` (order included), listing the first lines each lacks.
void ExpectSameLines(const Lines& want, const Lines& got, const std::string& what);

// ------------------------------------------------------------------------------- the key space

// Every key the random write sets touch (and a few they never do), and the scans that read them.
struct Universe {
  std::vector<std::string> counters;          // CounterKey
  std::vector<std::string> counter_prefixes;  // for ScanCounters
  std::vector<std::vector<std::string>> counter_merge_scans;
  std::vector<std::string> bitmaps;  // BitmapKey, RequestsUsersKey, RequestsPairsKey
  std::vector<std::vector<std::string>> bitmap_merge_scans;
  std::vector<std::vector<std::string>> union_groups;
  std::vector<std::string> packs;  // UserPackKey
  uint32_t pack_users = 12;
  std::vector<std::string> records;  // every record key kind
  std::vector<std::string> record_prefixes;
  std::vector<std::string> slices;  // RequestsSliceKey
  struct SliceScan {
    std::string prefix, start;
    size_t limit;  // rows read before fn returns false
  };
  std::vector<SliceScan> slice_scans;
  std::vector<std::string> slice_prefixes;  // for HasSliceWithPrefix
  std::vector<std::string> dedupe;          // DedupeKey, sorted; the last ones never written
  size_t dedupe_written = 0;
  std::vector<std::string> user_ids;  // the last one never written
  uint32_t user_indexes = 10;
  std::vector<std::pair<std::string, std::string>> agents;  // (workspace, agent id)
  uint32_t agent_indexes = 6;
  std::vector<std::string> topics = {"t0", "t1"};
  // Keys the random sets write: the first `*_written` of each list (the rest stay absent).
  size_t counters_written = 0, bitmaps_written = 0, packs_written = 0, records_written = 0;
  size_t slices_written = 0;
  static Universe Make();
};

// ------------------------------------------------------------------------ the reference model

// What the store must hold after a sequence of write sets, computed with plain containers.
struct Model {
  std::map<std::string, Counters> counters;
  std::map<std::string, std::set<uint32_t>> bitmaps;
  std::map<std::string, std::map<uint32_t, Counters>> packs;
  struct FieldValue {
    int64_t time = 0;
    std::string value;
  };
  std::map<std::string, std::map<uint8_t, FieldValue>> records;
  struct SliceSum {
    SliceTotals totals;
    std::map<uint32_t, SliceUser> users;
    std::map<uint32_t, SliceAgent> agents;
  };
  std::map<std::string, SliceSum> slices;
  std::set<std::string> dedupe;
  std::map<std::string, uint32_t> users;
  std::map<uint32_t, std::string> user_ids;
  std::map<std::pair<std::string, std::string>, uint32_t> agents;
  std::map<std::pair<uint32_t, uint32_t>, uint32_t> pairs;
  Store::DictionaryNext next;
  std::map<std::string, StoredOffset> offsets;  // by OffsetKey
  std::optional<int64_t> newest;

  static void Add(const Counters& delta, Counters* c) {
    for (int k = 0; k < Counters::kInts; ++k) c->i[k] += delta.i[k];
    for (int k = 0; k < Counters::kDoubles; ++k) c->d[k] += delta.d[k];
  }
  void MergeField(const std::string& key, uint8_t id, int64_t time, const std::string& value) {
    auto& fields = records[key];
    auto it = fields.find(id);
    const bool earliest_wins = id >= 64 && id < 128;
    // Ties: the later operand wins a latest-wins field, the earlier one an earliest-wins field.
    if (it == fields.end() || (earliest_wins ? time < it->second.time : time >= it->second.time)) {
      fields[id] = {time, value};
    }
  }
  Record RecordOf(const std::map<uint8_t, FieldValue>& fields) const {
    Record r;
    for (const auto& [id, f] : fields) r.push_back({id, f.time, f.value});
    return r;
  }
  std::string SliceTextOf(const SliceSum& s) const {
    std::vector<SliceUser> users;
    for (const auto& [index, user] : s.users) users.push_back(user);
    std::vector<SliceAgent> agents;
    for (const auto& [index, agent] : s.agents) agents.push_back(agent);
    return SliceText(s.totals, users, agents);
  }
};

// Calls fn(key, value) for the rows of `rows` under `prefix` from `start` on, in key order, until
// fn returns false.
template <typename Map, typename Fn>
void ScanModel(const Map& rows, std::string_view prefix, std::string_view start, Fn&& fn) {
  for (auto it = rows.lower_bound(std::string(std::max(prefix, start)));
       it != rows.end() && std::string_view(it->first).starts_with(prefix); ++it) {
    if (!fn(it->first, it->second)) return;
  }
}

// ------------------------------------------------------------------------------ random sets

// One random write set: operations that fill any store's WriteSet identically.
struct Batch {
  std::vector<std::function<void(WriteSet*)>> ops;
  void ApplyTo(WriteSet* set) const {
    for (const auto& op : ops) op(set);
  }
};

class Generator {
 public:
  Generator(const Universe& u, uint64_t seed) : u_(u), rng_(seed) {}

  int Uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  bool Chance(double p) { return std::bernoulli_distribution(p)(rng_); }
  template <typename T>
  const T& Pick(const std::vector<T>& v, size_t n) {
    return v[static_cast<size_t>(Uniform(0, static_cast<int>(n) - 1))];
  }

  // A random set of 1..12 operations, also applied to *model.
  Batch Next(Model* model) {
    Batch b;
    const int n = Uniform(1, 12);
    for (int i = 0; i < n; ++i) AddOp(model, &b);
    return b;
  }

  // Random deltas of one view, each added to *m at every key of `keys` and returned encoded.
  std::string CountersOp(Model* m, std::initializer_list<std::string_view> keys);
  std::string PackOp(Model* m, std::initializer_list<std::string_view> keys);
  std::string BitmapOp(Model* m, std::initializer_list<std::string_view> keys);
  std::string SliceOp(Model* m, std::initializer_list<std::string_view> keys);

 private:
  // Non-zero counters, with exact sums (small integers, doubles in quarters).
  Counters RandomCounters();
  // One random operation, added to *b and applied to *m.
  void AddOp(Model* m, Batch* b);
  void AddRecordOp(Model* m, Batch* b);
  void AddDictionaryOp(Model* m, Batch* b);

  const Universe& u_;
  std::mt19937_64 rng_;
};

// ------------------------------------------------------------------------------------ reading

// Every ReadView read of every key and scan of `u`, decoded.
Lines ViewLines(const ReadView& v, const Universe& u);
// Every read the writer makes (Store's own reads), decoded.
Lines WriterLines(const Store& s, const Universe& u);
// What ViewLines must read from a store holding `m`.
Lines ModelViewLines(const Model& m, const Universe& u);
// What WriterLines must read from a store holding `m`.
Lines ModelWriterLines(const Model& m, const Universe& u);

// ------------------------------------------------------------------------------------ fixture

class StageTest : public ::testing::Test {
 protected:
  void TearDown() override {
    for (const auto& dir : dirs_) std::filesystem::remove_all(dir);
  }
  // A new store in a fresh directory named `name`.
  std::unique_ptr<Store> Open(const std::string& name) {
    const std::filesystem::path dir =
        std::filesystem::temp_directory_path() /
        ("tally_stage_test_" + std::to_string(::getpid()) + "_" +
         ::testing::UnitTest::GetInstance()->current_test_info()->name() + "_" + name);
    std::filesystem::remove_all(dir);
    dirs_.push_back(dir);
    return Reopen(dir.string());
  }
  // Opens the store at `path` (as a restarted process would).
  static std::unique_ptr<Store> Reopen(const std::string& path) {
    auto s = Store::Open({.path = path});
    EXPECT_TRUE(s.has_value()) << s.error().message;
    return s ? std::move(*s) : nullptr;
  }
  static void Reopen(std::unique_ptr<Store>* store) {
    const std::string path = (*store)->path();
    store->reset();
    *store = Reopen(path);
  }
  // Flushes every memtable of `store` to files (stored rows then come from several levels).
  static void FlushAll(const Store& store) {
    const internal::StoreRep& rep = internal::Access::Rep(store);
    ASSERT_TRUE(rep.db->Flush(rocksdb::FlushOptions(), rep.cf).ok());
  }
  static void CompactAll(const Store& store) {
    const internal::StoreRep& rep = internal::Access::Rep(store);
    for (auto* cf : rep.cf) {
      ASSERT_TRUE(rep.db->CompactRange(rocksdb::CompactRangeOptions(), cf, nullptr, nullptr).ok());
    }
  }
  static void Write(Store& store, const Batch& batch) {
    WriteSet set(store);
    batch.ApplyTo(&set);
    auto s = store.Write(&set);
    ASSERT_TRUE(s.has_value()) << s.error().message;
  }
  static void Stage(Store& store, const Batch& batch) {
    WriteSet set(store);
    batch.ApplyTo(&set);
    auto s = store.Stage(&set);
    ASSERT_TRUE(s.has_value()) << s.error().message;
  }
  static void Persist(Store& store) {
    auto s = store.Persist();
    ASSERT_TRUE(s.has_value()) << s.error().message;
    EXPECT_EQ(store.staged().rows, 0u);
  }

  std::vector<std::filesystem::path> dirs_;
};

}  // namespace tally::store::stage_test
