#include "store/change_log.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <thread>

#include "store/bitmap.h"
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

// A note naming `keys` (no fields, no usage).
WriteNote Note(std::vector<std::string_view> keys) {
  WriteNote n;
  n.record_keys = std::move(keys);
  return n;
}

// What Collect reports, one line per change: "id" (agents) or "profile id", then " f<id>=value"
// per field and " @day:message:integration:users" per usage entry. nullopt if Collect fails.
std::optional<Strings> Lines(const ChangeLog& log, std::string_view ws, uint64_t from,
                             uint64_t to) {
  Strings out;
  const bool ok = log.Collect(ws, from, to, [&](const ChangeLog::Change& c) {
    std::string line = c.kind == RecordKeyRef::Kind::kProfile ? "profile " : "";
    line += c.id;
    for (const NoteField& f : c.fields) {
      line += " f" + std::to_string(f.id) + "=" + std::string(f.value);
    }
    for (const ChangeLog::Usage& u : c.usage) {
      line +=
          " @" + std::to_string(u.day) + ":" +
          std::to_string(static_cast<int>(u.counters->d[Counters::kAgentMessageCredits])) + ":" +
          std::to_string(static_cast<int>(u.counters->d[Counters::kAgentIntegrationCredits])) + ":";
      for (uint32_t id : u.users) line += std::to_string(id) + ",";
    }
    out.push_back(std::move(line));
  });
  if (!ok) return std::nullopt;
  return out;
}

// A store in a fresh temporary directory, closed and removed with this object.
struct TempStore {
  explicit TempStore(const std::string& name)
      : dir(std::filesystem::temp_directory_path() /
            ("tally_change_log_" + name + "_" + std::to_string(::getpid()))) {
    std::filesystem::remove_all(dir);
    auto opened = Store::Open({.path = dir.string()});
    EXPECT_TRUE(opened.has_value()) << opened.error().message;
    if (opened) store = std::move(*opened);
  }
  ~TempStore() {
    store.reset();
    std::filesystem::remove_all(dir);
  }
  std::filesystem::path dir;
  std::unique_ptr<Store> store;
};

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
  const NoteField email[] = {{field::kUserEmail, "u1@x.org"}};
  WriteNote w1 = Note({k1, k2, k3, k4});
  w1.fields = {{}, {}, email, {}};
  const WriteNote w2 = Note({k5});
  log.Record(10, 14, &w1);
  log.Record(14, 15, &w2);
  EXPECT_EQ(Lines(log, "ws", 10, 15), (Strings{"a2", "a1", "profile u1 f2=u1@x.org", "a2"}));
  EXPECT_EQ(Lines(log, "ws", 14, 15), (Strings{"a2"}));
  EXPECT_EQ(Lines(log, "other", 10, 15), (Strings{"a9"}));
  EXPECT_EQ(Lines(log, "ws", 15, 15), Strings{});         // nothing written in between
  EXPECT_EQ(Lines(log, "ws", 10, 14 + 3), std::nullopt);  // a write the log did not see
  EXPECT_EQ(Lines(log, "ws", 9, 15), std::nullopt);       // starts before the log
  EXPECT_EQ(Lines(log, "ws", 11, 15), std::nullopt);      // inside a write
  EXPECT_EQ(Lines(log, "ws", 15, 10), std::nullopt);
}

TEST(ChangeLog, UnknownWritesAndGapsAndEvictionBreakTheChain) {
  ChangeLog log(/*max_entries=*/3);
  const std::string k = Agent("ws", "a1");
  const WriteNote keys = Note({k});
  log.Record(1, 2, &keys);
  log.Record(2, 3, nullptr);  // unknown
  log.Record(5, 6, &keys);    // a gap (3, 5]
  EXPECT_TRUE(Lines(log, "ws", 1, 2));
  EXPECT_FALSE(Lines(log, "ws", 1, 3));
  EXPECT_FALSE(Lines(log, "ws", 3, 6));
  EXPECT_TRUE(Lines(log, "ws", 5, 6));
  log.Record(6, 7, &keys);  // evicts (1, 2]
  EXPECT_FALSE(Lines(log, "ws", 1, 2));
  EXPECT_EQ(Lines(log, "ws", 5, 7), (Strings{"a1", "a1"}));
}

// Fields and usage reach the reader with their record; profiles named only for usage and keys
// of other kinds are not kept.
TEST(ChangeLog, KeepsFieldsAndUsageOfAgentsAndProfiles) {
  ChangeLog log;
  const std::string a1 = Agent("ws", "a1"), a2 = Agent("ws", "a2"), u1 = Profile("ws", "u1"),
                    u2 = Profile("ws", "u2"), workflow = [] {
                      std::string k;
                      EntityKey("ws", event::EntityKind::kWorkflow, "w1", &k);
                      return k;
                    }();
  const NoteField name[] = {{field::kEntityName, "Support"}, {field::kEntityOwner, "u2"}};
  const NoteField email[] = {{field::kUserEmail, "u2@x.org"}};
  Counters c1, c2, c3;
  c1.d[Counters::kAgentMessageCredits] = 3;
  c2.d[Counters::kAgentIntegrationCredits] = 5;
  c3.d[Counters::kAgentMessageCredits] = 7;
  UserBitmap users1, users3;
  users1.Add(4);
  users1.Add(9);
  users3.Add(1);
  WriteNote w = Note({a1, a2, u1, u2, workflow});
  w.fields = {{}, name, {}, email, name};
  w.usage = {{.record = 1, .day = 100, .counters = &c2},
             {.record = 0, .day = 100, .counters = &c1, .users = &users1},
             {.record = 4, .day = 100, .counters = &c3},  // a workflow: not kept
             {.record = 0, .day = 99, .counters = &c3, .users = &users3}};
  log.Record(1, 2, &w);
  EXPECT_EQ(Lines(log, "ws", 1, 2),
            (Strings{"a1 @100:3:0:4,9, @99:7:0:1,",
                     "a2 f10=Support f12=u2 @100:0:5:", "profile u2 f2=u2@x.org"}));
}

// Store::Write records exactly the versions around its write; a write around it breaks the
// chain.
TEST(ChangeLog, StoreWritesAreRecorded) {
  TempStore temp("writes");
  ASSERT_NE(temp.store, nullptr);
  auto& store = temp.store;
  auto version = [&] { return store->NewReadView()->version(); };
  const uint64_t s0 = version();
  const std::string k = Agent("ws", "a1");
  const WriteNote keys = Note({k});
  WriteSet set(*store);
  set.PutOffset("t", 0, {"c", 1});
  set.PutOffset("t", 1, {"c", 2});
  ASSERT_TRUE(store->Write(&set, &keys).has_value());
  const uint64_t s1 = version();
  EXPECT_GT(s1, s0);
  EXPECT_EQ(Lines(store->changes(), "ws", s0, s1), (Strings{"a1"}));
  WriteSet unlogged(*store);
  unlogged.PutOffset("t", 2, {"c", 3});
  ASSERT_TRUE(testing::WriteUnlogged(*store, &unlogged).has_value());
  ASSERT_TRUE(store->Write(&set, &keys).has_value());
  EXPECT_FALSE(Lines(store->changes(), "ws", s0, version()));
}

// A reader that sees a version finds the log entry leading to it: the store records a write
// before it publishes the new version, never after.
TEST(ChangeLog, AReaderAtAVersionFindsItsEntry) {
  TempStore temp("race");
  ASSERT_NE(temp.store, nullptr);
  auto& store = temp.store;
  const std::string k = Agent("ws", "a1");
  const WriteNote note = Note({k});
  std::atomic<bool> done{false};
  std::thread writer([&] {
    WriteSet set(*store);
    for (int i = 0; i < 20000; ++i) {
      set.Clear();
      set.PutOffset("t", 0, {"c", i});
      ASSERT_TRUE(((i % 2) ? store->Stage(&set, &note) : store->Write(&set, &note)).has_value());
    }
    done = true;
  });
  int misses = 0, views = 0;
  while (!done) {
    const uint64_t v = store->NewReadView()->version();
    if (v == 0) continue;
    ++views;
    // (Unless the log dropped the entry since: it keeps the newest 512.)
    if (!store->changes().Collect("ws", v - 1, v, [](const ChangeLog::Change&) {}) &&
        store->NewReadView()->version() - v < 400) {
      ++misses;
    }
  }
  writer.join();
  EXPECT_GT(views, 0);
  EXPECT_EQ(misses, 0) << "of " << views << " views";
}

// A workspace counter row and an operand that adds 1 to its first field.
struct OneMore {
  std::string key, encoded;
  static OneMore Make() {
    OneMore m;
    CounterKey(Scope::kWorkspace, "ws", Granularity::kDay, 0, "", &m.key);
    Counters one;
    one.i[0] = 1;
    AppendCounters(one, &m.encoded);
    return m;
  }
};

// A view's version names exactly the writes its stored rows include: a view never reads a write
// whose version it does not have yet (a cache made from it would later replay that write's log
// entry and count it twice).
TEST(ChangeLog, AViewsVersionMatchesTheWritesItReads) {
  TempStore temp("version-content");
  ASSERT_NE(temp.store, nullptr);
  auto& store = temp.store;
  const auto [key, encoded] = OneMore::Make();
  const uint64_t base = store->NewReadView()->version();
  std::atomic<bool> done{false};
  std::thread writer([&] {
    WriteSet set(*store);
    for (int i = 0; i < 20000; ++i) {
      set.Clear();
      set.AddCounters(key, encoded);
      ASSERT_TRUE(store->Write(&set).has_value());
    }
    done = true;
  });
  int ahead = 0, views = 0;
  while (!done) {
    std::unique_ptr<ReadView> view = store->NewReadView();
    Counters c;
    view->AddCounters(key, &c);
    ++views;
    if (static_cast<uint64_t>(c.i[0]) != view->version() - base) ++ahead;
  }
  writer.join();
  EXPECT_GT(views, 0);
  EXPECT_EQ(ahead, 0) << "of " << views << " views read a count other than their version";
}

// A stable view reads staged rows as of its version: a stage waits for it, where a plain view
// reads what is staged after its version (what a cache built from it must not keep).
TEST(ChangeLog, AStableViewReadsStagedRowsAsOfItsVersion) {
  TempStore temp("stable");
  ASSERT_NE(temp.store, nullptr);
  auto& store = temp.store;
  const auto [key, encoded] = OneMore::Make();
  auto stage_one = [&] {
    WriteSet set(*store);
    set.AddCounters(key, encoded);
    ASSERT_TRUE(store->Stage(&set).has_value());
  };
  auto count = [&](const ReadView& view) {
    Counters c;
    view.AddCounters(key, &c);
    return c.i[0];
  };
  stage_one();

  std::unique_ptr<ReadView> plain = store->NewReadView();
  std::unique_ptr<ReadView> stable = store->NewStableReadView();
  const uint64_t version = stable->version();
  EXPECT_EQ(plain->version(), version);
  EXPECT_EQ(count(*stable), 1);
  std::atomic<bool> staged{false};
  std::thread writer([&] {
    stage_one();
    staged = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_FALSE(staged) << "a stage did not wait for the stable view";
  EXPECT_EQ(count(*stable), 1);
  EXPECT_EQ(stable->version(), version);
  stable.reset();
  writer.join();
  EXPECT_EQ(count(*store->NewStableReadView()), 2);
  EXPECT_EQ(store->NewReadView()->version(), version + 1);
  // The plain view, still at `version`, reads the later stage: the case stable views exist for.
  EXPECT_EQ(plain->version(), version);
  EXPECT_EQ(count(*plain), 2);
}

// Followers run after every Write and Stage that succeeded, once per tag, when the write is
// visible; an unlogged write runs none, and a follower that throws does not fail the write.
TEST(ChangeLog, FollowersRunAfterEveryVisibleWrite) {
  TempStore temp("follow");
  ASSERT_NE(temp.store, nullptr);
  auto& store = temp.store;
  const Store& s = *store;
  int tag = 0;
  std::vector<uint64_t> seen;  // the version each call saw
  s.Follow(&tag, [&](const Store& st) { seen.push_back(st.NewReadView()->version()); });
  s.Follow(&tag, [&](const Store&) { seen.push_back(0); });  // same tag: ignored
  int other = 0;
  s.Follow(&other, [](const Store&) { throw std::runtime_error("follower failed"); });
  WriteSet set(*store);
  set.PutOffset("t", 0, {"c", 1});
  ASSERT_TRUE(store->Write(&set, nullptr).has_value());
  ASSERT_TRUE(store->Stage(&set, nullptr).has_value());
  ASSERT_TRUE(testing::WriteUnlogged(*store, &set).has_value());
  ASSERT_TRUE(store->Persist().has_value());
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0], 1u);
  EXPECT_EQ(seen[1], 2u);
}

}  // namespace
}  // namespace tally::store
