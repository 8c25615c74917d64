// Unit tests of bringing a cached Super Agents table forward after writes (Refresh, and the
// follower the store runs), against a brute-force reference.
#include "query/internal/superagents_refresh.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "query/internal/superagents_test_base.h"
#include "store/testing/store_testing.h"

namespace tally::query::internal {
namespace {

using event::Action;
using event::EntityKind;
using event::UsageEvent;

// After writes the cached table is brought forward (patched, not rebuilt) and every answer still
// equals the reference; only a write the change log did not see makes the next request rebuild.
TEST_F(SuperagentsManyTest, CachedTableFollowsWritesExactly) {
  CheckAll("warm-up");
  const uint64_t scans_warm = cache_.Stats().column_scans;

  // 1. Usage only: a few live agents (one gets a new user, one moves to the top), one deleted
  // agent, and an event by a creator that repeats its email.
  SuperagentsCacheStats before = cache_.Stats();
  UsageEvent by_creator = ExecEvent(2, "2026-03-14", "c2", 1, 0);
  by_creator.user_email = *refs_[2].email;
  Apply({ExecEvent(5, "2026-03-14", "u-new", 2, 1), ExecEvent(8, "2026-03-13", "u1", 500, 0),
         ExecEvent(7, "2026-03-14", "u2", 3, 0), by_creator});
  CheckAll("usage only");
  SuperagentsCacheStats after = cache_.Stats();
  EXPECT_EQ(after.builds, before.builds);
  EXPECT_GE(after.refreshes, before.refreshes + 1);

  // 2. Many agents touched at once (beyond point-read patching of the columns): still exact.
  std::vector<UsageEvent> many;
  for (size_t i = 0; i < refs_.size(); i += 2)
    many.push_back(ExecEvent(i, "2026-03-15", "u3", 1, 1));
  Apply(many);
  CheckAll("many agents");
  EXPECT_EQ(cache_.Stats().builds, after.builds);

  // 2b. Late events, usage only: days in earlier buckets of the 30-day window and of the ranges
  // (a new user and a known one on a February day, one on March 3), then one on today's week
  // only. Each refresh re-reads just the buckets holding the touched days.
  Apply({ExecEvent(6, "2026-02-20", "u-late", 7, 0), ExecEvent(9, "2026-02-20", "u1", 0, 3),
         ExecEvent(11, "2026-03-03", "u-late", 1, 1)});
  CheckAll("late events");
  Apply({ExecEvent(6, "2026-03-10", "u-late2", 2, 0)});
  CheckAll("an event in this week");
  Apply({ExecEvent(12, "2026-01-10", "u-old", 50, 0)});  // outside every range and the window
  CheckAll("an event before every range");
  // The store's writes bring the cached table forward themselves (Store::Follow): requests
  // after a write find it at the store's latest state and refresh nothing.
  const SuperagentsCacheStats before_write = cache_.Stats();
  Apply({ExecEvent(5, "2026-03-15", "u-followed", 1, 0), ExecEvent(6, "2026-03-14", "u1", 2, 0)});
  const SuperagentsCacheStats after_write = cache_.Stats();
  EXPECT_GT(after_write.refreshes, before_write.refreshes);
  CheckAll("followed by the write");
  EXPECT_EQ(cache_.Stats().refreshes, after_write.refreshes);
  EXPECT_EQ(cache_.Stats().builds, after_write.builds);
  // A write that leaves the workspace as it was, then usage again: the cached columns (and the
  // user sets behind the active users) follow both.
  UsageEvent elsewhere = ExecEvent(13, "2026-03-15", "u1", 1, 0);
  refs_[13].execs.pop_back();
  elsewhere.workspace_id = "other-ws";
  Apply({elsewhere});
  CheckAll("a write to another workspace");
  Apply({ExecEvent(13, "2026-03-15", "u-after", 1, 0)});
  CheckAll("usage after it");
  EXPECT_EQ(cache_.Stats().builds, after.builds);
  // Every column was brought forward from the log, none scanned again.
  EXPECT_EQ(cache_.Stats().column_scans, scans_warm);

  // 3. Every other kind of change in one batch, after the same-day events above: a rename, a
  // new visibility, a deletion, two new agents (one by a new creator), a creator's new email and
  // a creator's first email. The cached table is patched in memory, not rebuilt.
  before = cache_.Stats();
  QueueStructuralChanges();
  Apply(batch_);
  CheckAll("structural changes");
  Check(Req("-created_by_email"), "structural changes: by email");
  Check(Req("created_at", "new"), "structural changes: by created_at");
  Check(Req("-owner_user_id"), "structural changes: by owner");
  SuperagentsRequest range = Req("-total_credits_consumed");  // a range not cached: a scan
  range.from = Day("2026-02-20");
  range.to = Day("2026-03-15");
  Check(range, "structural changes: new range");
  SuperagentsCacheStats now = cache_.Stats();
  EXPECT_EQ(now.builds, before.builds);
  EXPECT_GT(now.refreshes, before.refreshes);

  // 4. Many structural refreshes in a row (the table's string buffers are repacked on the way).
  for (int round = 0; round < 24; ++round) {
    batch_.clear();
    Ref& renamed = refs_[20 + round];
    renamed.name = "Round " + std::to_string(round) + " Agent";
    Later(ExecEvent(20 + round, "2026-03-15", "u7", 1, 0));
    Create("new-" + std::to_string(round), "c" + std::to_string(round), refs_[round].email,
           "Bot round");
    Apply(batch_);
    Check(Req("-total_credits_consumed", "round"), "round " + std::to_string(round));
  }
  CheckAll("after the rounds");
  Check(Req("-created_by_email"), "after the rounds: by email");
  EXPECT_EQ(cache_.Stats().builds, now.builds);

  // 5. A write the change log did not see: the next request rebuilds.
  store::WriteSet unlogged(*store_);
  unlogged.PutOffset("x", 0, {"c", 1});
  ASSERT_TRUE(store::testing::WriteUnlogged(*store_, &unlogged).has_value());
  CheckAll("after an unlogged write");
  EXPECT_GT(cache_.Stats().builds, now.builds);
}

// Tables built and columns scanned by a request while ingest stages batches: a batch staged
// during the build must be in the table or in the next refresh, never in both. Ingest stages
// here (as tallyd does) on another thread while requests build from a cold cache; every answer
// after the writer stops equals the reference.
TEST_F(SuperagentsManyTest, BuildsRacingStagesCountEveryBatchOnce) {
  agg_->set_stage(true);
  int next_id = 200'000;
  int64_t unlogged_offset = 0;
  const SuperagentsCacheStats before = cache_.Stats();
  for (int round = 0; round < 12; ++round) {
    std::atomic<bool> done{false};
    std::thread writer([&] {
      for (int b = 0; b < 40; ++b) {
        std::vector<UsageEvent> batch;
        for (size_t k = 0; k < 30; ++k) {
          Ref& r = refs_[(b * 31 + k * 7) % refs_.size()];
          UsageEvent e;
          e.id = std::to_string(++next_id);
          e.source = "test";
          e.kind = EntityKind::kAgent;
          e.action = Action::kExecuted;
          e.time_ms = At("2026-03-14");
          e.workspace_id = "ws";
          e.user_id = "u" + std::to_string(k % 9);
          e.entity_id = r.id;
          if (r.name) e.entity_name = *r.name;
          e.entity_visibility = r.visibility;
          e.message_credits = 1;
          e.integration_credits = 2;
          r.execs.push_back({Day("2026-03-14"), e.user_id, 1, 2});
          batch.push_back(std::move(e));
        }
        Apply(batch);
      }
      done = true;
    });
    // Builds on this thread while the writer stages: a write the change log did not see makes
    // the next request rebuild the table (the follower cannot bring it forward).
    while (!done) {
      store::WriteSet unlogged(*store_);
      unlogged.PutOffset("x", 0, {"c", ++unlogged_offset});
      ASSERT_TRUE(store::testing::WriteUnlogged(*store_, &unlogged).has_value());
      SuperagentsRequest r = Req("-total_credits_consumed");
      r.workspace_id = "ws";
      ASSERT_TRUE(ListSuperagents(*store_, cache_, clock_, r).has_value());
    }
    writer.join();
    // The last table built above is brought forward from the change log: exact.
    Check(Req("-total_credits_consumed"), "round " + std::to_string(round));
    Check(Req("-active_users_last_30d"), "round " + std::to_string(round) + ": active users");
  }
  EXPECT_GT(cache_.Stats().builds, before.builds + 12) << "no builds raced a stage";
}

}  // namespace
}  // namespace tally::query::internal
