// Store::Stage and the readers: views read while the writer stages, parts and scans over staged
// rows, and who frees replaced generations.

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "store/stage_test_model.h"
#include "store/testing/store_testing.h"

namespace tally::store::stage_test {
namespace {

// One thread stages sets (persisting now and then, writing once in a while) while two threads
// make views and read. Each set adds 1 twice to a total row (two operations: a row shows a set
// entirely or not at all, so the total is even), 1 to one of several part rows, and two new ids
// to a bitmap. Every reader sees values that never decrease, within a view and from view to view,
// and never count more sets than were begun; in the end everything adds up.
TEST_F(StageTest, ReadersRaceTheWriterSafely) {
  std::unique_ptr<Store> store = Open("race");
  ASSERT_TRUE(store);
  constexpr int kParts = 8;
  std::string total, prefix, bitmap;
  CounterKey(Scope::kWorkspace, "w", Granularity::kDay, 0, "", &total);
  CounterBucketPrefix(Scope::kProject, "w", Granularity::kDay, 0, &prefix);
  BitmapKey(Scope::kWorkspace, "w", Granularity::kDay, 0, "", &bitmap);
  std::vector<std::string> parts;
  for (int i = 0; i < kParts; ++i) {
    std::string id, key;
    ScopeIdProject("p" + std::to_string(i), &id);
    CounterKey(Scope::kProject, "w", Granularity::kDay, 0, id, &key);
    parts.push_back(key);
  }
  Counters one;
  one.i[0] = 1;
  const std::string encoded_one = EncodeCounters(one);

  std::atomic<int64_t> begun{0};  // sets handed to Stage or Write so far
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    WriteSet set(*store);
    std::string enc;
    for (int64_t n = 0; !stop.load(); ++n) {
      set.Clear();
      set.AddCounters(total, encoded_one);
      set.AddCounters(parts[n % kParts], encoded_one);
      for (uint32_t id : {2 * static_cast<uint32_t>(n), 2 * static_cast<uint32_t>(n) + 1}) {
        UserBitmap b;
        b.Add(id);
        enc.clear();
        b.AppendEncoded(&enc);
        set.OrBitmap(bitmap, enc);
      }
      set.AddCounters(total, encoded_one);
      begun.store(n + 1);
      const Status s = n % 97 == 0 ? store->Write(&set) : store->Stage(&set);
      if (!s) {
        ADD_FAILURE() << "writing set " << n << ": " << s.error().message;
        return;
      }
      if (n % 13 == 12 && !store->Persist()) {
        ADD_FAILURE() << "persisting after set " << n;
        return;
      }
      if (n % 211 == 210 && !store->Flush()) {  // bounds the operands a read merges
        ADD_FAILURE() << "flushing after set " << n;
        return;
      }
    }
  });
  std::atomic<int64_t> reads{0};
  auto reader = [&] {
    int64_t last_total = 0, last_parts = 0;
    uint64_t last_ids = 0, last_version = 0;
    while (!stop.load()) {
      const auto view = store->NewReadView();
      Counters first;
      view->AddCounters(total, &first);
      Counters sum;
      view->ScanCounters(prefix, [&](std::string_view, const Counters& c) { sum.i[0] += c.i[0]; });
      UserBitmap ids;
      view->OrBitmap(bitmap, &ids);
      Counters second;
      view->AddCounters(total, &second);
      const int64_t limit = begun.load();
      const int64_t t1 = first.i[0], t2 = second.i[0], p = sum.i[0];
      const uint64_t n = ids.Cardinality();
      const bool ok = t1 % 2 == 0 && t2 % 2 == 0 && n % 2 == 0 && t1 >= last_total && t2 >= t1 &&
                      t2 <= 2 * limit && p >= last_parts && p <= limit && n >= last_ids &&
                      n <= 2 * static_cast<uint64_t>(limit) && view->version() >= last_version;
      if (!ok) {
        ADD_FAILURE() << "sets begun " << limit << "; total " << t1 << " then " << t2
                      << " (before: " << last_total << "), parts " << p
                      << " (before: " << last_parts << "), ids " << n << " (before: " << last_ids
                      << ")";
        return;
      }
      last_total = t2;
      last_parts = p;
      last_ids = n;
      last_version = view->version();
      reads.fetch_add(1);
    }
  };
  std::thread reader1(reader), reader2(reader);
  std::this_thread::sleep_for(std::chrono::seconds(1));
  stop.store(true);
  writer.join();
  reader1.join();
  reader2.join();
  EXPECT_GT(reads.load(), 10);
  ASSERT_TRUE(store->Persist().has_value());

  const int64_t sets = begun.load();
  EXPECT_GT(sets, 100);
  const auto view = store->NewReadView();
  Counters t, sum;
  ASSERT_TRUE(view->AddCounters(total, &t));
  view->ScanCounters(prefix, [&](std::string_view, const Counters& c) { sum.i[0] += c.i[0]; });
  UserBitmap ids;
  view->OrBitmap(bitmap, &ids);
  EXPECT_EQ(t.i[0], 2 * sets);
  EXPECT_EQ(sum.i[0], sets);
  EXPECT_EQ(ids.Cardinality(), 2 * static_cast<uint64_t>(sets));
}

// A user pack stored in more parts than a view pins unmerged (read as one merged part) and staged
// too: ForEachUserPackPart hands the staged part after the stored one, and every pack read sums
// both, before and after Persist.
TEST_F(StageTest, UserPackPartsIncludeTheStagedPart) {
  std::unique_ptr<Store> store = Open("packs");
  ASSERT_TRUE(store);
  const internal::StoreRep& rep = internal::Access::Rep(*store);
  ASSERT_TRUE(
      rep.db->SetOptions(rep.family(internal::kUserPacks), {{"disable_auto_compactions", "true"}})
          .ok());
  std::string key;
  UserPackKey("ws", Granularity::kDay, 3, &key);
  std::map<uint32_t, int64_t> want;
  auto add = [&](uint32_t round, bool stage) {
    Counters c;
    c.i[1] = round + 1;
    std::string pack;
    UserPackWriter(&pack).Add(round % 3, c);
    want[round % 3] += round + 1;
    WriteSet set(*store);
    set.AddUserPack(key, pack);
    ASSERT_TRUE((stage ? store->Stage(&set) : store->Write(&set)).has_value());
  };
  auto check = [&](const ReadView& view, size_t want_parts, const std::string& when) {
    SCOPED_TRACE(when);
    std::map<uint32_t, int64_t> got;
    size_t parts = 0;
    EXPECT_TRUE(view.ForEachUserPackPart(key, [&](std::string_view part) {
      ++parts;
      ForEachUserPackEntry(part, [&](uint32_t user, std::string_view c) {
        Counters counters;
        EXPECT_TRUE(AddEncodedCounters(c, &counters));
        got[user] += counters.i[1];
      });
    }));
    EXPECT_EQ(parts, want_parts);
    EXPECT_EQ(got, want);
    got.clear();
    view.ForEachUserCounters(key, [&](uint32_t user, const Counters& c) { got[user] += c.i[1]; });
    EXPECT_EQ(got, want);
    for (uint32_t user = 0; user < 4; ++user) {
      Counters c;
      EXPECT_TRUE(view.AddUserCounters(key, user, &c));
      EXPECT_EQ(c.i[1], want.contains(user) ? want[user] : 0) << "user " << user;
    }
    std::string pack;
    ASSERT_TRUE(view.GetUserPack(key, &pack));
    got.clear();
    ForEachUserPackEntry(pack, [&](uint32_t user, std::string_view c) {
      Counters counters;
      AddEncodedCounters(c, &counters);
      got[user] += counters.i[1];
    });
    EXPECT_EQ(got, want);
  };
  for (uint32_t round = 0; round < 34; ++round) {  // 34 files: more than the 32 parts pinned
    add(round, false);
    ASSERT_TRUE(rep.db->Flush(rocksdb::FlushOptions(), rep.family(internal::kUserPacks)).ok());
  }
  check(*store->NewReadView(), 1, "stored only");
  for (uint32_t round = 34; round < 40; ++round) add(round, true);
  const auto before = store->NewReadView();
  check(*before, 2, "stored and staged");
  Persist(*store);
  check(*before, 2, "a view made before Persist");
  check(*store->NewReadView(), 1, "persisted");

  // A few stored parts, unmerged, and a staged one: the staged part comes last.
  std::string few;
  UserPackKey("ws", Granularity::kDay, 4, &few);
  key = few;
  want.clear();
  add(0, false);
  add(1, false);
  add(2, true);
  check(*store->NewReadView(), 3, "two stored parts and a staged one");
}

// testing::WriteUnlogged applies a set "like Store::Write": after the sets staged before it, which
// it must neither drop from readers nor keep from being persisted.
TEST_F(StageTest, AnUnloggedWriteKeepsWhatIsStaged) {
  std::unique_ptr<Store> store = Open("unlogged");
  ASSERT_TRUE(store);
  std::string key;
  CounterKey(Scope::kWorkspace, "ws", Granularity::kDay, 0, "", &key);
  Counters one;
  one.i[0] = 1;
  WriteSet set(*store);
  set.AddCounters(key, EncodeCounters(one));
  ASSERT_TRUE(store->Stage(&set).has_value());
  ASSERT_TRUE(testing::WriteUnlogged(*store, &set).has_value());
  auto read = [&] {
    Counters c;
    store->NewReadView()->AddCounters(key, &c);
    return c.i[0];
  };
  EXPECT_EQ(read(), 2) << "staged, then written unlogged";
  Persist(*store);
  EXPECT_EQ(read(), 2) << "persisted";
  Reopen(&store);
  ASSERT_TRUE(store);
  EXPECT_EQ(read(), 2) << "reopened";
}

// A scan whose start lies before its prefix reads stored and staged rows alike from the prefix
// on (the stored side used to seek to `start` and stop at the first key outside the prefix).
TEST_F(StageTest, SliceScanFromBeforeThePrefixSeesStoredAndStagedRows) {
  std::unique_ptr<Store> store = Open("slice-start");
  ASSERT_TRUE(store);
  Slice one;
  one.totals.requests = 1;
  std::string value;
  AppendSlice(one, &value);
  std::string a0, b0, b1;
  RequestsSliceKey("a", kAllAgents, nullptr, Granularity::kDay, 0, &a0);
  RequestsSliceKey("b", kAllAgents, nullptr, Granularity::kDay, 0, &b0);
  RequestsSliceKey("b", kAllAgents, nullptr, Granularity::kDay, 1, &b1);
  WriteSet stored(*store);
  stored.AddSlice(a0, value);
  stored.AddSlice(b0, value);
  ASSERT_TRUE(store->Write(&stored).has_value());
  WriteSet staged(*store);
  staged.AddSlice(b1, value);
  ASSERT_TRUE(store->Stage(&staged).has_value());
  const std::string prefix = b0.substr(0, b0.size() - 5);  // org "b", all agents and projects
  auto count = [&] {
    size_t n = 0;
    store->NewReadView()->ScanSlices(prefix, a0, [&](std::string_view, const SliceView&) {
      ++n;
      return true;
    });
    return n;
  };
  EXPECT_EQ(count(), 2u) << "one stored, one staged";
  Persist(*store);
  EXPECT_EQ(count(), 2u) << "both stored";
}

// Scans take staged rows a few at a time: full scans over many staged rows, and scans that stop
// after the first row from every start (how the requests engine lists projects), see exactly
// the stored and staged rows, combined where a key is in both.
TEST_F(StageTest, ScansOverManyStagedRowsSeeEveryRowOnce) {
  std::unique_ptr<Store> store = Open("many-staged");
  ASSERT_TRUE(store);
  constexpr int kProjects = 700;  // several chunks of staged rows
  auto key_of = [](int i) {
    char name[16];
    std::snprintf(name, sizeof name, "p%04d", i);
    const std::string_view project = name;
    std::string key;
    RequestsSliceKey("org", kAllAgents, &project, Granularity::kDay, 0, &key);
    return key;
  };
  auto value_of = [](uint64_t requests) {
    Slice slice;
    slice.totals.requests = requests;
    std::string value;
    AppendSlice(slice, &value);
    return value;
  };
  std::map<std::string, uint64_t> want;  // key -> requests
  WriteSet stored(*store);
  for (int i = 0; i < kProjects; i += 3) {
    stored.AddSlice(key_of(i), value_of(1));
    want[key_of(i)] += 1;
  }
  ASSERT_TRUE(store->Write(&stored).has_value());
  WriteSet staged(*store);
  for (int i = 0; i < kProjects; i += 2) {
    staged.AddSlice(key_of(i), value_of(10));
    want[key_of(i)] += 10;
  }
  ASSERT_TRUE(store->Stage(&staged).has_value());
  const std::string first = key_of(0);
  const std::string prefix = first.substr(0, first.size() - 5 - 6);  // org "org", all agents
  ASSERT_TRUE(want.begin()->first.starts_with(prefix));

  std::unique_ptr<ReadView> view = store->NewReadView();
  std::map<std::string, uint64_t> got;
  size_t rows = 0;
  view->ScanSlices(prefix, {}, [&](std::string_view key, const SliceView& s) {
    got[std::string(key)] += s.totals().requests;
    ++rows;
    return true;
  });
  EXPECT_EQ(rows, want.size()) << "a row was skipped or seen twice";
  EXPECT_EQ(got, want);

  // From each row, the first row read is that row.
  for (const auto& [key, requests] : want) {
    std::string seen;
    uint64_t seen_requests = 0;
    view->ScanSlices(prefix, key, [&](std::string_view k, const SliceView& s) {
      seen = k;
      seen_requests = s.totals().requests;
      return false;
    });
    ASSERT_EQ(seen, key);
    EXPECT_EQ(seen_requests, requests) << "stored and staged parts not combined";
  }

  // The key-only scan lists the same rows, whole and from each row on.
  std::vector<std::string> keys;
  view->ScanSliceKeys(prefix, {}, [&](std::string_view key) {
    keys.emplace_back(key);
    return true;
  });
  std::vector<std::string> want_keys;
  for (const auto& [key, requests] : want) want_keys.push_back(key);
  EXPECT_EQ(keys, want_keys);
  for (const auto& [key, requests] : want) {
    std::string seen;
    view->ScanSliceKeys(prefix, key, [&](std::string_view k) {
      seen = k;
      return false;
    });
    ASSERT_EQ(seen, key);
  }
}

// A persist replaces the generation views read; the replaced one (its open state: every row
// staged since the last persist) is freed by the writer once no view reads it, never by the
// reader that drops the last view of it (a request would pay milliseconds for it).
TEST_F(StageTest, TheWriterFreesReplacedGenerationsNotTheLastReader) {
  std::unique_ptr<Store> store = Open("retired");
  ASSERT_TRUE(store);
  Counters one;
  one.i[0] = 1;
  std::string key;
  CounterKey(Scope::kWorkspace, "w", Granularity::kDay, 0, "", &key);
  WriteSet set(*store);
  set.AddCounters(key, EncodeCounters(one));
  ASSERT_TRUE(store->Stage(&set).has_value());
  const internal::StoreRep& rep = internal::Access::Rep(*store);
  const std::weak_ptr<internal::Generation> first = rep.Current();

  std::unique_ptr<ReadView> view = store->NewReadView();  // reads the first generation
  ASSERT_TRUE(store->Persist().has_value());
  EXPECT_NE(rep.Current(), first.lock()) << "a persist starts a new generation";
  view.reset();  // the last view of the first generation, dropped by this (reader's) thread
  EXPECT_FALSE(first.expired()) << "the reader that dropped the last view freed the generation";

  ASSERT_TRUE(store->Persist().has_value());  // nothing staged: the writer only cleans up
  EXPECT_TRUE(first.expired()) << "the writer kept a generation no view reads";

  // Without views, a persist frees the generation it replaces at once.
  ASSERT_TRUE(store->Stage(&set).has_value());
  const std::weak_ptr<internal::Generation> second = rep.Current();
  ASSERT_TRUE(store->Persist().has_value());
  EXPECT_TRUE(second.expired());
  Counters c;
  store->NewReadView()->AddCounters(key, &c);
  EXPECT_EQ(c.i[0], 2);
}

}  // namespace
}  // namespace tally::store::stage_test
