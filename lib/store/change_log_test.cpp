#include "store/change_log.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "store/codec.h"
#include "store/store.h"
#include "store/testing/store_testing.h"
#include "store/write_set.h"

namespace tally::store {
namespace {

using Strings = std::vector<std::string>;

std::string Agent(std::string_view ws, std::string_view id) {
  std::string k;
  EntityKey(ws, event::EntityKind::kAgent, id, &k);
  return k;
}
std::string Profile(std::string_view ws, std::string_view user) {
  std::string k;
  UserProfileKey(ws, user, &k);
  return k;
}

// A note naming `keys` as changed, with no day range (every day).
WriteNote Note(std::vector<std::string_view> keys) {
  WriteNote n;
  n.record_keys = std::move(keys);
  return n;
}

TEST(ParseRecordKey, NamesProfilesAndAgentRowsOnly) {
  // RecordKeyRef views into the key: the key must outlive it.
  const std::string agent = Agent("ws", "a1");
  RecordKeyRef r = ParseRecordKey(agent);
  EXPECT_EQ(r.kind, RecordKeyRef::Kind::kAgent);
  EXPECT_EQ(r.workspace_id, "ws");
  EXPECT_EQ(r.id, "a1");
  const std::string profile = Profile("ws", "u1");
  r = ParseRecordKey(profile);
  EXPECT_EQ(r.kind, RecordKeyRef::Kind::kProfile);
  EXPECT_EQ(r.id, "u1");
  std::string k;
  EntityKey("ws", event::EntityKind::kWorkflow, "w1", &k);
  EXPECT_EQ(ParseRecordKey(k).kind, RecordKeyRef::Kind::kOther);
  WorkspaceKey("ws", &k);
  EXPECT_EQ(ParseRecordKey(k).kind, RecordKeyRef::Kind::kOther);
  EXPECT_EQ(ParseRecordKey("").kind, RecordKeyRef::Kind::kOther);
  k = Agent("ws", "a1");
  k.pop_back();  // truncated
  EXPECT_EQ(ParseRecordKey(k).kind, RecordKeyRef::Kind::kOther);
}

TEST(ChangeLog, CollectsTheChainForOneWorkspace) {
  ChangeLog log;
  const std::string k1 = Agent("ws", "a2"), k2 = Agent("ws", "a1"), k3 = Profile("ws", "u1"),
                    k4 = Agent("other", "a9"), k5 = Agent("ws", "a2");
  const WriteNote w1 = Note({k1, k2, k3, k4}), w2 = Note({k5});
  log.Record(10, 14, &w1);
  log.Record(14, 15, &w2);
  ChangeLog::Touched t;
  ASSERT_TRUE(log.Collect("ws", 10, 15, &t));
  EXPECT_EQ(t.agents, (Strings{"a1", "a2"}));
  EXPECT_EQ(t.users, (Strings{"u1"}));
  ASSERT_TRUE(log.Collect("ws", 14, 15, &t));
  EXPECT_EQ(t.agents, (Strings{"a2"}));
  EXPECT_TRUE(t.users.empty());
  ASSERT_TRUE(log.Collect("other", 10, 15, &t));
  EXPECT_EQ(t.agents, (Strings{"a9"}));
  ASSERT_TRUE(log.Collect("ws", 15, 15, &t));  // nothing written in between
  EXPECT_TRUE(t.agents.empty());
  EXPECT_FALSE(log.Collect("ws", 10, 14 + 3, &t));  // a write the log did not see
  EXPECT_FALSE(log.Collect("ws", 9, 15, &t));       // starts before the log
  EXPECT_FALSE(log.Collect("ws", 11, 15, &t));      // inside a write
  EXPECT_FALSE(log.Collect("ws", 15, 10, &t));
}

TEST(ChangeLog, UnknownWritesAndGapsAndEvictionBreakTheChain) {
  ChangeLog log(/*max_entries=*/3);
  const std::string k = Agent("ws", "a1");
  const WriteNote keys = Note({k});
  log.Record(1, 2, &keys);
  log.Record(2, 3, nullptr);  // unknown keys
  log.Record(5, 6, &keys);    // a gap (3, 5]
  ChangeLog::Touched t;
  EXPECT_TRUE(log.Collect("ws", 1, 2, &t));
  EXPECT_FALSE(log.Collect("ws", 1, 3, &t));
  EXPECT_FALSE(log.Collect("ws", 3, 6, &t));
  EXPECT_TRUE(log.Collect("ws", 5, 6, &t));
  log.Record(6, 7, &keys);  // evicts (1, 2]
  EXPECT_FALSE(log.Collect("ws", 1, 2, &t));
  EXPECT_TRUE(log.Collect("ws", 5, 7, &t));
  EXPECT_EQ(t.agents, (Strings{"a1"}));
}

// Usage-only keys count as touched agents but not as changed rows, usage-only profiles not at
// all, and the day ranges of the writes add up to their hull.
TEST(ChangeLog, SeparatesUsageFromFieldChangesAndKeepsTheDays) {
  ChangeLog log;
  const std::string a1 = Agent("ws", "a1"), a2 = Agent("ws", "a2"), u1 = Profile("ws", "u1"),
                    u2 = Profile("ws", "u2"), other = Agent("other", "a9");
  WriteNote w1 = Note({a1, a2, u1, u2});
  w1.fields_changed = {0, 1, 0, 1};
  w1.first_day = 100;
  w1.last_day = 101;
  WriteNote w2 = Note({other});
  w2.first_day = 50;  // another workspace's days do not count
  w2.last_day = 50;
  WriteNote w3 = Note({a1});
  w3.fields_changed = {0};
  w3.first_day = 99;
  w3.last_day = 99;
  WriteNote w4;  // touched no bucket
  w4.first_day = 1;
  w4.last_day = 0;
  log.Record(1, 2, &w1);
  log.Record(2, 3, &w2);
  log.Record(3, 4, &w3);
  log.Record(4, 5, &w4);
  ChangeLog::Touched t;
  ASSERT_TRUE(log.Collect("ws", 1, 5, &t));
  EXPECT_EQ(t.agents, (Strings{"a1", "a2"}));
  EXPECT_EQ(t.agent_rows, (Strings{"a2"}));
  EXPECT_EQ(t.users, (Strings{"u2"}));
  EXPECT_EQ(t.first_day, 99);
  EXPECT_EQ(t.last_day, 101);
  ASSERT_TRUE(log.Collect("ws", 3, 4, &t));
  EXPECT_EQ(t.agents, (Strings{"a1"}));
  EXPECT_TRUE(t.agent_rows.empty());
  EXPECT_EQ(t.first_day, 99);
  EXPECT_EQ(t.last_day, 99);
  ASSERT_TRUE(log.Collect("ws", 4, 5, &t));
  EXPECT_GT(t.first_day, t.last_day);
  // Without fields_changed every key counts as changed.
  const WriteNote all = Note({a1, u1});
  log.Record(5, 6, &all);
  ASSERT_TRUE(log.Collect("ws", 5, 6, &t));
  EXPECT_EQ(t.agent_rows, (Strings{"a1"}));
  EXPECT_EQ(t.users, (Strings{"u1"}));
  EXPECT_LE(t.first_day, -1000000);  // no range given: every day
  EXPECT_GE(t.last_day, 1000000);
}

// Store::Write records exactly the versions around its write; a write around it breaks the
// chain.
TEST(ChangeLog, StoreWritesAreRecorded) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("tally_change_log_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  auto store = Store::Open({.path = dir.string()});
  ASSERT_TRUE(store.has_value()) << store.error().message;
  auto version = [&] { return (*store)->NewReadView()->version(); };
  const uint64_t s0 = version();
  const std::string k = Agent("ws", "a1");
  const WriteNote keys = Note({k});
  WriteSet set(**store);
  set.PutOffset("t", 0, {"c", 1});
  set.PutOffset("t", 1, {"c", 2});
  ASSERT_TRUE((*store)->Write(&set, &keys).has_value());
  const uint64_t s1 = version();
  EXPECT_GT(s1, s0);
  ChangeLog::Touched t;
  ASSERT_TRUE((*store)->changes().Collect("ws", s0, s1, &t));
  EXPECT_EQ(t.agents, (Strings{"a1"}));
  WriteSet unlogged(**store);
  unlogged.PutOffset("t", 2, {"c", 3});
  ASSERT_TRUE(testing::WriteUnlogged(**store, &unlogged).has_value());
  ASSERT_TRUE((*store)->Write(&set, &keys).has_value());
  EXPECT_FALSE((*store)->changes().Collect("ws", s0, version(), &t));
  store->reset();
  std::filesystem::remove_all(dir);
}

// A reader that sees a version finds the log entry leading to it: the store records a write
// before it publishes the new version, never after.
TEST(ChangeLog, AReaderAtAVersionFindsItsEntry) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("tally_change_log_race_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  auto store = Store::Open({.path = dir.string()});
  ASSERT_TRUE(store.has_value()) << store.error().message;
  const std::string k = Agent("ws", "a1");
  const WriteNote note = Note({k});
  std::atomic<bool> done{false};
  std::thread writer([&] {
    WriteSet set(**store);
    for (int i = 0; i < 20000; ++i) {
      set.Clear();
      set.PutOffset("t", 0, {"c", i});
      ASSERT_TRUE(
          ((i % 2) ? (*store)->Stage(&set, &note) : (*store)->Write(&set, &note)).has_value());
    }
    done = true;
  });
  int misses = 0, views = 0;
  ChangeLog::Touched t;
  while (!done) {
    const uint64_t v = (*store)->NewReadView()->version();
    if (v == 0) continue;
    ++views;
    // (Unless the log dropped the entry since: it keeps the newest 512.)
    if (!(*store)->changes().Collect("ws", v - 1, v, &t) &&
        (*store)->NewReadView()->version() - v < 400) {
      ++misses;
    }
  }
  writer.join();
  EXPECT_GT(views, 0);
  EXPECT_EQ(misses, 0) << "of " << views << " views";
  store->reset();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace tally::store
