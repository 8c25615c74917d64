// Store::Stage and Store::Persist: staged sets read exactly like written ones through every read
// of the store, a crash loses what was staged and nothing else, views stay consistent across a
// persist, and readers may read while the writer stages.
//
// Reads are compared as text lines of decoded values (never raw bytes: equal values may be
// encoded differently), against a second store that only writes and against a reference model
// computed here with plain containers.

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

// The same random write sets, applied to one store with Write only and to another with Stage
// (persisted at random points, with an occasional Write in between), read the same through every
// read of a view and of the writer, and both read as the reference model says, at every point:
// with sets staged, after Persist, after flushes, compactions and reopening.
TEST_F(StageTest, StagedSetsReadLikeWrittenOnes) {
  const Universe u = Universe::Make();
  std::unique_ptr<Store> written = Open("written"), staged = Open("staged");
  ASSERT_TRUE(written && staged);
  Model model;
  Generator gen(u, 20240611);
  auto compare = [&](const std::string& when) {
    const Lines want_view = ModelViewLines(model, u), want_writer = ModelWriterLines(model, u);
    const Lines written_view = ViewLines(*written->NewReadView(), u);
    const Lines staged_view = ViewLines(*staged->NewReadView(), u);
    ExpectSameLines(written_view, staged_view, when + ": views, written store vs staged store");
    ExpectSameLines(want_view, staged_view, when + ": views, model vs staged store");
    ExpectSameLines(want_view, written_view, when + ": views, model vs written store");
    const Lines written_writer = WriterLines(*written, u);
    const Lines staged_writer = WriterLines(*staged, u);
    ExpectSameLines(written_writer, staged_writer, when + ": writer reads, written vs staged");
    ExpectSameLines(want_writer, staged_writer, when + ": writer reads, model vs staged store");
    ExpectSameLines(want_writer, written_writer, when + ": writer reads, model vs written store");
  };

  constexpr int kSets = 320;
  int staged_sets = 0, persists = 0, writes_while_staged = 0;
  for (int i = 0; i < kSets; ++i) {
    const Batch batch = gen.Next(&model);
    Write(*written, batch);
    if (gen.Chance(0.1)) {
      if (staged->staged().rows > 0) ++writes_while_staged;
      Write(*staged, batch);  // persists what was staged, then this set
      EXPECT_EQ(staged->staged().rows, 0u);
    } else {
      Stage(*staged, batch);
      ++staged_sets;
      EXPECT_GT(staged->staged().rows, 0u);
      EXPECT_GT(staged->staged().bytes, 0u);
    }
    if (gen.Chance(0.15)) {
      Persist(*staged);
      ++persists;
    }
    if (gen.Chance(0.04)) {
      FlushAll(*written);
      FlushAll(*staged);  // the database only: what is staged stays staged
    }
    if (gen.Chance(0.02)) {
      CompactAll(*written);
      CompactAll(*staged);
    }
    if (i % 100 == 99) {  // a restart, after persisting (what a crash would lose: see below)
      Persist(*staged);
      Reopen(&written);
      Reopen(&staged);
      ASSERT_TRUE(written && staged);
    }
    if (i % 8 == 7) compare("after set " + std::to_string(i));
    if (HasFailure()) return;
  }
  EXPECT_GT(staged_sets, kSets / 2);
  EXPECT_GT(persists, 10);
  EXPECT_GT(writes_while_staged, 5);

  ASSERT_GT(staged->staged().rows, 0u);  // the last sets are still staged
  compare("at the end, with sets staged");
  Persist(*staged);
  compare("at the end, persisted");
  Reopen(&written);
  Reopen(&staged);
  ASSERT_TRUE(written && staged);
  compare("at the end, reopened");
  ASSERT_TRUE(model.newest.has_value());
  EXPECT_EQ(staged->newest_event_ms(), *model.newest);
  EXPECT_EQ(written->newest_event_ms(), *model.newest);
  EXPECT_EQ(staged->MalformedOperands(), 0u);
  EXPECT_EQ(written->MalformedOperands(), 0u);
}

// Staged sets live in memory only: a store closed without Persist (as a crash would) reopens with
// nothing of them, offsets included, and a checkpoint never holds them; once persisted (by
// Persist or by a later Write), all of them survive a reopen.
TEST_F(StageTest, ACrashLosesStagedSetsAndOffsetsTogether) {
  const Universe u = Universe::Make();
  std::unique_ptr<Store> store = Open("crash");
  ASSERT_TRUE(store);
  Generator gen(u, 7);
  Model model;
  // A written base, offsets included.
  for (int i = 0; i < 20; ++i) Write(*store, gen.Next(&model));
  WriteSet offsets(*store);
  offsets.PutOffset("t0", 0, {"c0", 100});
  offsets.PutOffset("t0", 1, {"c0", 200});
  ASSERT_TRUE(store->Write(&offsets).has_value());
  std::string key;
  OffsetKey("t0", 0, &key);
  model.offsets[key] = {"c0", 100};
  OffsetKey("t0", 1, &key);
  model.offsets[key] = {"c0", 200};
  const Model base = model;
  const Lines base_view = ModelViewLines(base, u), base_writer = ModelWriterLines(base, u);

  // Staged sets with their offsets (moved on, and a new partition): read at once...
  Model staged_model = base;
  std::vector<Batch> batches;
  for (int i = 0; i < 20; ++i) batches.push_back(gen.Next(&staged_model));
  Batch offsets_on;
  offsets_on.ops.push_back([](WriteSet* s) {
    s->PutOffset("t0", 0, {"c0", 150});
    s->PutOffset("t9", 0, {"c0", 10});
  });
  batches.push_back(offsets_on);
  OffsetKey("t0", 0, &key);
  staged_model.offsets[key] = {"c0", 150};
  OffsetKey("t9", 0, &key);
  staged_model.offsets[key] = {"c0", 10};
  for (const Batch& b : batches) Stage(*store, b);
  ExpectSameLines(ModelViewLines(staged_model, u), ViewLines(*store->NewReadView(), u),
                  "staged, before the crash");
  ExpectSameLines(ModelWriterLines(staged_model, u), WriterLines(*store, u),
                  "writer reads, staged, before the crash");

  // ...but not in a checkpoint...
  const std::filesystem::path checkpoint = std::filesystem::path(store->path()) += "_checkpoint";
  dirs_.push_back(checkpoint);
  ASSERT_TRUE(store->Checkpoint(checkpoint.string()).has_value());
  {
    std::unique_ptr<Store> copy = Reopen(checkpoint.string());
    ASSERT_TRUE(copy);
    ExpectSameLines(base_view, ViewLines(*copy->NewReadView(), u), "checkpoint taken while staged");
    ExpectSameLines(base_writer, WriterLines(*copy, u), "writer reads, checkpoint while staged");
  }

  // ...and gone after a crash: the views and the offsets are those of the last write.
  Reopen(&store);
  ASSERT_TRUE(store);
  EXPECT_EQ(store->staged().rows, 0u);
  ExpectSameLines(base_view, ViewLines(*store->NewReadView(), u), "reopened after a crash");
  ExpectSameLines(base_writer, WriterLines(*store, u), "writer reads, reopened after a crash");
  auto loaded = store->LoadOffsets();
  ASSERT_TRUE(loaded.has_value());
  std::map<std::pair<std::string, int32_t>, int64_t> next;
  for (const Store::OffsetEntry& e : *loaded) next[{e.topic, e.partition}] = e.offset.next_offset;
  EXPECT_EQ((next[{"t0", 0}]), 100);
  EXPECT_EQ((next[{"t0", 1}]), 200);
  EXPECT_FALSE(next.contains({"t9", 0}));  // a partition first seen by the staged sets

  // Staged again and persisted: everything survives.
  for (const Batch& b : batches) Stage(*store, b);
  Persist(*store);
  Reopen(&store);
  ASSERT_TRUE(store);
  ExpectSameLines(ModelViewLines(staged_model, u), ViewLines(*store->NewReadView(), u),
                  "persisted, reopened");
  ExpectSameLines(ModelWriterLines(staged_model, u), WriterLines(*store, u),
                  "writer reads, persisted, reopened");

  // Staged, then a Write: the Write persists the staged sets too, before itself.
  Model written_model = staged_model;
  for (int i = 0; i < 10; ++i) Stage(*store, gen.Next(&written_model));
  Batch last = gen.Next(&written_model);
  last.ops.push_back([](WriteSet* s) { s->PutOffset("t0", 0, {"c1", 300}); });
  OffsetKey("t0", 0, &key);
  written_model.offsets[key] = {"c1", 300};
  Write(*store, last);
  EXPECT_EQ(store->staged().rows, 0u);
  Reopen(&store);
  ASSERT_TRUE(store);
  ExpectSameLines(ModelViewLines(written_model, u), ViewLines(*store->NewReadView(), u),
                  "staged then written, reopened");
  ExpectSameLines(ModelWriterLines(written_model, u), WriterLines(*store, u),
                  "writer reads, staged then written, reopened");
}

// A view reads staged rows as they are at each read: it sees sets staged after it was made, and
// a Persist changes nothing it reads (rows moving from memory to the database are not counted
// twice, nor lost); a view made after the Persist reads the same, with the same version. Views
// keep their generation: sets staged after a Persist are seen by views made after it only.
TEST_F(StageTest, ViewsReadTheSameAcrossAPersist) {
  const Universe u = Universe::Make();
  std::unique_ptr<Store> store = Open("views");
  ASSERT_TRUE(store);
  Generator gen(u, 99);
  Model model;
  for (int i = 0; i < 30; ++i) Write(*store, gen.Next(&model));
  FlushAll(*store);
  for (int i = 0; i < 10; ++i) Write(*store, gen.Next(&model));  // memtable and files
  for (int i = 0; i < 15; ++i) Stage(*store, gen.Next(&model));
  const auto early = store->NewReadView();  // made with sets staged
  for (int i = 0; i < 15; ++i) Stage(*store, gen.Next(&model));
  const Lines first = ModelViewLines(model, u);
  ExpectSameLines(first, ViewLines(*early, u), "a view sees sets staged after it was made");
  const uint64_t version = store->NewReadView()->version();
  EXPECT_GT(version, early->version());

  Persist(*store);
  ExpectSameLines(first, ViewLines(*early, u), "a view made before Persist, read after it");
  const auto late = store->NewReadView();
  ExpectSameLines(first, ViewLines(*late, u), "a view made after Persist");
  EXPECT_EQ(late->version(), version);  // Persist changes no content

  for (int i = 0; i < 15; ++i) Stage(*store, gen.Next(&model));
  const Lines second = ModelViewLines(model, u);
  ExpectSameLines(second, ViewLines(*late, u), "a view sees sets staged after a Persist");
  ExpectSameLines(first, ViewLines(*early, u), "a view of the previous generation");
  Persist(*store);
  ExpectSameLines(second, ViewLines(*late, u), "the same view after a second Persist");
  ExpectSameLines(second, ViewLines(*store->NewReadView(), u), "a view after a second Persist");
  ExpectSameLines(first, ViewLines(*early, u), "a view two generations old");
}

}  // namespace
}  // namespace tally::store::stage_test
