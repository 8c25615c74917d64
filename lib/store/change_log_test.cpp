#include "store/change_log.h"

#include <gtest/gtest.h>

#include <filesystem>

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
  std::vector<std::string_view> w1 = {k1, k2, k3, k4}, w2 = {k5};
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
  std::vector<std::string_view> keys = {k};
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
  std::vector<std::string_view> keys = {k};
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

}  // namespace
}  // namespace tally::store
