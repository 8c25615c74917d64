#include "aggregate/aggregator.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <filesystem>
#include <map>
#include <set>

#include "store/codec.h"
#include "store/internal/store_rep.h"

namespace tally::aggregate {
namespace {

using event::Action;
using event::EntityKind;
using event::UsageEvent;
using store::Counters;

class AggregatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("tally_agg_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    Reopen();
  }
  void TearDown() override {
    agg_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  void Reopen() {
    agg_.reset();
    store_.reset();
    store_ = std::move(*store::Store::Open({.path = dir_.string()}));
    agg_ = std::move(*Aggregator::Create(store_.get()));
  }
  static UsageEvent Exec(std::string id, std::string user, int64_t day, int64_t tokens) {
    UsageEvent e;
    e.id = std::move(id);
    e.source = "src";
    e.kind = EntityKind::kAgent;
    e.action = Action::kExecuted;
    e.time_ms = day * 86'400'000;
    e.workspace_id = "ws";
    e.project_id = "p1";
    e.user_id = std::move(user);
    e.entity_id = "a1";
    e.tokens = tokens;
    e.cost_usd = 0.5;
    return e;
  }
  Result<ApplyStats> Apply(const std::vector<UsageEvent>& evs, int64_t next_offset) {
    std::vector<const UsageEvent*> ptrs;
    for (const auto& e : evs) ptrs.push_back(&e);
    PartitionOffset off{"usage-events", 1, next_offset};
    return agg_->Apply(ptrs, {&off, 1}, "cluster-a");
  }
  Counters Read(store::Scope scope, std::string_view extra, Granularity g, int32_t bucket) {
    std::string key;
    store::CounterKey(scope, "ws", g, bucket, extra, &key);
    Counters c;
    store_->NewReadView()->AddCounters(key, &c);
    return c;
  }

  std::filesystem::path dir_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<Aggregator> agg_;
};

// An event of `ws` naming `org` (empty: none).
UsageEvent InOrg(std::string id, std::string ws, std::string org) {
  UsageEvent e;
  e.id = std::move(id);
  e.source = "src";
  e.kind = EntityKind::kAgent;
  e.action = Action::kExecuted;
  e.time_ms = 100 * int64_t{86'400'000};
  e.workspace_id = std::move(ws);
  e.organization_id = std::move(org);
  e.user_id = "u1";
  e.entity_id = "a1";
  return e;
}

std::vector<uint8_t> Mismatches(const Aggregator& agg, const std::vector<UsageEvent>& evs) {
  std::vector<const UsageEvent*> ptrs;
  for (const auto& e : evs) ptrs.push_back(&e);
  std::vector<uint8_t> out;
  agg.MarkOrganizationMismatches(ptrs, &out);
  return out;
}

TEST_F(AggregatorTest, TheFirstEventNamingAnOrganizationBindsItsWorkspace) {
  std::vector<UsageEvent> batch = {InOrg("e1", "w1", ""),      InOrg("e2", "w1", "org_1"),
                                   InOrg("e3", "w1", "org_3"), InOrg("e4", "w2", "org_3"),
                                   InOrg("e5", "w1", "org_1"), InOrg("e6", "w1", "")};
  EXPECT_EQ(Mismatches(*agg_, batch), (std::vector<uint8_t>{0, 0, 1, 0, 0, 0}));
  // Apply judges alike (here without the screen): the refused event is skipped and counted.
  auto s = Apply(batch, 6);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->applied, 5u);
  EXPECT_EQ(s->organization_mismatches, 1u);
  EXPECT_EQ(agg_->OrganizationOf("w1"), "org_1");
  // Stored with the batch: a reopened aggregator knows the bindings.
  Reopen();
  EXPECT_EQ(agg_->OrganizationOf("w1"), "org_1");
  EXPECT_EQ(agg_->OrganizationOf("w2"), "org_3");
  EXPECT_EQ(Mismatches(*agg_, {InOrg("e7", "w1", "org_3"), InOrg("e8", "w2", "org_3")}),
            (std::vector<uint8_t>{1, 0}));
  // The refused event was not marked as seen: sent again correctly, it counts.
  auto again = Apply({InOrg("e3", "w1", "org_1")}, 7);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->applied, 1u);
}

TEST_F(AggregatorTest, DeclaredBindingsWinAndAReSentEventBindsLikeItsFirstCopy) {
  agg_->DeclareOrganizations({{"w1", "org_5"}});
  EXPECT_EQ(Mismatches(*agg_, {InOrg("e1", "w1", "org_1"), InOrg("e2", "w1", "org_5")}),
            (std::vector<uint8_t>{1, 0}));
  // An event stored before its workspace was bound (no organization then) is re-sent naming
  // one: a duplicate, yet it binds the workspace exactly as the screen assumed.
  ASSERT_TRUE(Apply({InOrg("e3", "w2", "")}, 1).has_value());
  auto s = Apply({InOrg("e3", "w2", "org_2"), InOrg("e4", "w2", "org_9")}, 3);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->duplicates, 1u);
  EXPECT_EQ(s->organization_mismatches, 1u);
  Reopen();
  EXPECT_EQ(agg_->OrganizationOf("w2"), "org_2");
  EXPECT_EQ(agg_->OrganizationOf("w1"), "");  // declarations are not stored
}

TEST_F(AggregatorTest, DedupesWithinAndAcrossBatchesAndStoresOffsets) {
  auto s1 =
      Apply({Exec("e1", "u1", 100, 10), Exec("e2", "u2", 100, 5), Exec("e1", "u1", 100, 10)}, 3);
  ASSERT_TRUE(s1.has_value());
  EXPECT_EQ(s1->applied, 2u);
  EXPECT_EQ(s1->duplicates, 1u);
  EXPECT_EQ(s1->new_users, 2u);
  Reopen();  // dictionary and dedupe state must survive a restart
  auto s2 = Apply({Exec("e2", "u2", 100, 5), Exec("e3", "u1", 101, 1)}, 5);
  ASSERT_TRUE(s2.has_value());
  EXPECT_EQ(s2->applied, 1u);
  EXPECT_EQ(s2->duplicates, 1u);
  EXPECT_EQ(s2->new_users, 0u);

  const int cf = Counters::CountField(EntityKind::kAgent, Action::kExecuted);
  Counters day100 = Read(store::Scope::kWorkspace, {}, Granularity::kDay, 100);
  EXPECT_EQ(day100.i[cf], 2);
  EXPECT_EQ(day100.i[Counters::kAgentTokens], 15);
  EXPECT_DOUBLE_EQ(day100.d[Counters::kAgentCost], 1.0);
  Counters month = Read(store::Scope::kWorkspace, {}, Granularity::kMonth, MonthOfDay(100));
  EXPECT_EQ(month.i[cf], 3);
  uint32_t u1, u2;
  ASSERT_TRUE(store_->NewReadView()->LookupUser("u1", &u1));
  ASSERT_TRUE(store_->NewReadView()->LookupUser("u2", &u2));
  // Per-user counters live in the week's user pack (written by two batches: merged on read).
  std::string pack_key, pack;
  store::UserPackKey("ws", Granularity::kWeek, WeekOfDay(100), &pack_key);
  ASSERT_TRUE(store_->NewReadView()->GetUserPack(pack_key, &pack));
  std::map<uint32_t, Counters> per_user;
  ASSERT_TRUE(store::ForEachUserPackEntry(pack, [&](uint32_t user, std::string_view c) {
    EXPECT_TRUE(store::AddEncodedCounters(c, &per_user[user]));
  }));
  ASSERT_EQ(per_user.size(), 2u);
  EXPECT_EQ(per_user[u1].i[cf], 2);
  EXPECT_EQ(per_user[u1].i[Counters::kAgentTokens], 11);
  EXPECT_EQ(per_user[u2].i[cf], 1);

  // Distinct users of the project over both days: a union, not a sum of daily counts.
  store::UserBitmap users;
  auto view = store_->NewReadView();
  std::string pid, key;
  store::ScopeIdProject("p1", &pid);
  for (int32_t day : {100, 101}) {
    store::BitmapKey(store::Scope::kProject, "ws", Granularity::kDay, day, pid, &key);
    view->OrBitmap(key, &users);
  }
  EXPECT_EQ(users.Cardinality(), 2u);

  auto offsets = store_->LoadOffsets();
  ASSERT_TRUE(offsets.has_value());
  ASSERT_EQ(offsets->size(), 1u);
  EXPECT_EQ((*offsets)[0].offset.next_offset, 5);
  EXPECT_EQ((*offsets)[0].offset.cluster_id, "cluster-a");
}

TEST_F(AggregatorTest, AsyncWritesFindDuplicatesOfTheBatchBeingWritten) {
  // Each batch repeats events of the one before it (whose write may still be running when the
  // next batch looks its keys up) and of the one before that, and brings new users. Reference:
  // the distinct event ids, counted here without the aggregator.
  agg_->set_async_write(true);
  std::map<std::string, int64_t> tokens_by_id;  // reference: first copy of each id counts
  std::set<std::string> users;
  size_t applied = 0, duplicates = 0, total = 0;
  std::vector<UsageEvent> previous, before_previous;
  int64_t offset = 0;
  for (int b = 0; b < 40; ++b) {
    std::vector<UsageEvent> batch;
    for (int i = 0; i < 150; ++i) {
      const std::string id = "b" + std::to_string(b) + "e" + std::to_string(i);
      batch.push_back(Exec(id, "u" + std::to_string((b * 150 + i) % 997), 100 + b % 3, i + 1));
    }
    for (size_t i = 0; i < previous.size(); i += 2) batch.push_back(previous[i]);
    for (size_t i = 1; i < before_previous.size(); i += 7) batch.push_back(before_previous[i]);
    for (const UsageEvent& e : batch) {
      tokens_by_id.try_emplace(e.id, *e.tokens);
      users.insert(e.user_id);
    }
    total += batch.size();
    offset += static_cast<int64_t>(batch.size());
    auto st = Apply(batch, offset);
    ASSERT_TRUE(st.has_value()) << st.error().message;
    applied += st->applied;
    duplicates += st->duplicates;
    before_previous = std::move(previous);
    previous = batch;
  }
  ASSERT_TRUE(agg_->Drain());
  EXPECT_EQ(applied, tokens_by_id.size());
  EXPECT_EQ(duplicates, total - tokens_by_id.size());

  int64_t want_tokens = 0;
  for (const auto& [id, t] : tokens_by_id) want_tokens += t;
  const int cf = Counters::CountField(EntityKind::kAgent, Action::kExecuted);
  Counters month = Read(store::Scope::kWorkspace, {}, Granularity::kMonth, MonthOfDay(100));
  EXPECT_EQ(month.i[cf], static_cast<int64_t>(tokens_by_id.size()));
  EXPECT_EQ(month.i[Counters::kAgentTokens], want_tokens);
  store::UserBitmap active;
  {
    auto view = store_->NewReadView();
    std::string key;
    for (int32_t day : {100, 101, 102}) {
      store::BitmapKey(store::Scope::kWorkspace, "ws", Granularity::kDay, day, {}, &key);
      view->OrBitmap(key, &active);
    }
  }
  EXPECT_EQ(active.Cardinality(), users.size());
  auto next = store_->LoadDictionaryNext();
  ASSERT_TRUE(next);
  EXPECT_EQ(next->user, users.size());
  auto offsets = store_->LoadOffsets();
  ASSERT_TRUE(offsets.has_value());
  ASSERT_EQ(offsets->size(), 1u);
  EXPECT_EQ((*offsets)[0].offset.next_offset, offset);

  // Restarted, the same events again are all duplicates: every batch reached the store.
  Reopen();
  auto again = Apply(previous, offset + 1);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->applied, 0u);
}

TEST_F(AggregatorTest, PairsKeepTheirIndexesAcrossRestartsAndNewPairsGetTheNext) {
  // (agent, user) pairs get dense ids; the aggregator skips the dictionary lookup of pairs its
  // filter of stored pairs lacks, so a restart must still find every stored pair (staged ones
  // included) and number only new ones.
  auto exec = [](std::string id, std::string user, std::string agent) {
    UsageEvent e = Exec(std::move(id), std::move(user), 100, 1);
    e.organization_id = "org";
    e.entity_id = std::move(agent);
    return e;
  };
  ASSERT_TRUE(Apply({exec("e1", "u1", "a1"), exec("e2", "u2", "a1"), exec("e3", "u1", "a2")}, 3));
  for (bool stage : {false, true}) {
    SCOPED_TRACE(stage ? "staged" : "written");
    Reopen();
    agg_->set_stage(stage);
    auto pair_of = [&](const std::string& user, const std::string& agent) -> int64_t {
      uint32_t u;
      if (!store_->NewReadView()->LookupUser(user, &u)) return -1;
      auto a = store_->LookupAgentIndex("ws", agent);
      if (!a || !*a) return -1;
      auto p = store_->LookupPairIndex(**a, u);
      return p && *p ? static_cast<int64_t>(**p) : -1;
    };
    const int64_t p11 = pair_of("u1", "a1"), p21 = pair_of("u2", "a1"), p12 = pair_of("u1", "a2");
    ASSERT_GE(p11, 0);
    ASSERT_GE(p21, 0);
    ASSERT_GE(p12, 0);
    auto next = store_->LoadDictionaryNext();
    ASSERT_TRUE(next);
    const uint32_t first_new = next->pair;
    const std::string n = stage ? "s" : "w";
    ASSERT_TRUE(
        Apply({exec(n + "4", "u2", "a1"), exec(n + "5", "u3" + n, "a2"), exec(n + "6", "u1", "a2")},
              stage ? 9 : 6));
    EXPECT_EQ(pair_of("u1", "a1"), p11);
    EXPECT_EQ(pair_of("u2", "a1"), p21);
    EXPECT_EQ(pair_of("u1", "a2"), p12);
    EXPECT_EQ(pair_of("u3" + n, "a2"), static_cast<int64_t>(first_new));
    next = store_->LoadDictionaryNext();
    ASSERT_TRUE(next);
    EXPECT_EQ(next->pair, first_new + 1);
  }
}

TEST_F(AggregatorTest, InventoryRowsKeepLatestAndEarliest) {
  UsageEvent created = Exec("c1", "u1", 100, 0);
  created.action = Action::kCreated;
  created.entity_name = "First";
  UsageEvent renamed = Exec("r1", "u2", 105, 0);
  renamed.action = Action::kUpdated;
  renamed.entity_name = "Second";
  UsageEvent late_old = Exec("o1", "u3", 99, 0);  // arrives last, but is oldest
  late_old.action = Action::kUpdated;
  late_old.entity_name = "Zeroth";
  ASSERT_TRUE(Apply({created}, 1).has_value());
  ASSERT_TRUE(Apply({renamed, late_old}, 3).has_value());
  std::string key;
  store::EntityKey("ws", EntityKind::kAgent, "a1", &key);
  store::Record r;
  ASSERT_TRUE(store_->NewReadView()->GetRecord(key, &r));
  EXPECT_EQ(store::FindField(r, store::field::kEntityName)->value, "Second");
  EXPECT_EQ(store::FindField(r, store::field::kEntityCreated)->value, "u1");
  EXPECT_EQ(store::FindField(r, store::field::kEntityCreated)->time_ms, 100 * 86'400'000LL);
}

// Regression: row keys short enough to live inside std::string (small-string buffer) were
// referenced from a growing vector of strings, so a batch with many rows wrote some rows under
// garbage keys. Every one of many short-id agents of one batch must get exactly its own rows.
TEST_F(AggregatorTest, ManyShortKeyedRowsInOneBatchKeepTheirKeys) {
  std::vector<UsageEvent> evs;
  for (int i = 0; i < 500; ++i) {
    UsageEvent e = Exec("s" + std::to_string(i), "u" + std::to_string(i % 7), 100 + i % 3, i);
    e.entity_id = "b" + std::to_string(i % 250);
    e.project_id = "p" + std::to_string(i % 11);
    e.entity_name = "n" + std::to_string(i);
    evs.push_back(std::move(e));
  }
  ASSERT_TRUE(Apply(evs, 500).has_value());
  const int cf = Counters::CountField(EntityKind::kAgent, Action::kExecuted);
  for (int a = 0; a < 250; ++a) {
    std::string extra;
    store::ScopeIdEntity(EntityKind::kAgent, "b" + std::to_string(a), &extra);
    Counters month = Read(store::Scope::kEntity, extra, Granularity::kMonth, MonthOfDay(100));
    // Agent a runs events a and a + 250 (tokens = the event number).
    EXPECT_EQ(month.i[cf], 2) << a;
    EXPECT_EQ(month.i[Counters::kAgentTokens], 2 * a + 250) << a;
    std::string key;
    store::EntityKey("ws", EntityKind::kAgent, "b" + std::to_string(a), &key);
    store::Record r;
    ASSERT_TRUE(store_->NewReadView()->GetRecord(key, &r)) << a;
    ASSERT_NE(store::FindField(r, store::field::kEntityName), nullptr) << a;
    // The later event time wins the name (ties: the later event).
    const int winner = (a + 250) % 3 >= a % 3 ? a + 250 : a;
    EXPECT_EQ(store::FindField(r, store::field::kEntityName)->value, "n" + std::to_string(winner));
  }
  for (int p = 0; p < 11; ++p) {
    std::string extra;
    store::ScopeIdProject("p" + std::to_string(p), &extra);
    int64_t want = 0;
    for (int i = p; i < 500; i += 11) ++want;
    int64_t got = 0;
    for (int32_t day : {100, 101, 102}) {
      got += Read(store::Scope::kProject, extra, Granularity::kDay, day).i[cf];
    }
    EXPECT_EQ(got, want) << p;
  }
}

TEST_F(AggregatorTest, StampsDedupeEntriesWithTheInjectedClock) {
  constexpr int64_t kNow = 1'700'000'000'123;
  agg_ = std::move(*Aggregator::Create(store_.get(), Clock::Fixed(kNow)));
  ASSERT_TRUE(Apply({Exec("e1", "u1", 20'000, 5)}, 1));
  std::string key, value;
  store::DedupeKey("src", "e1", &key);
  const rocksdb::Status got = store::internal::Access::Db(*store_)->Get(
      rocksdb::ReadOptions(), store::internal::Access::Cf(*store_, store::internal::kDedupe), key,
      &value);
  ASSERT_TRUE(got.ok()) << got.ToString();
  int64_t time_ms = 0, written_ms = 0;
  ASSERT_TRUE(store::DecodeDedupeValue(value, &time_ms, &written_ms));
  EXPECT_EQ(time_ms, int64_t{20'000} * 86'400'000);
  EXPECT_EQ(written_ms, kNow);
}

}  // namespace
}  // namespace tally::aggregate
