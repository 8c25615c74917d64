// End-to-end tests of how tallyd batches what it consumes (lib/ingest/consumer.h):
//  - a backlog is stored in batches that grow while the previous batch is being stored, instead
//    of one batch per --batch-ms window (regression: a fixed window from the start of the poll
//    loop made tallyd store a backlog in many small batches, each costing about twice as much per
//    event as a large one);
//  - a quiet stream is still stored within about --batch-ms of its first event, and a batch that
//    holds --batch-ready messages is stored without waiting for the window to end;
//  - /readyz's read_offset runs ahead of next_offset and meets it once caught up (the harness
//    checks the latter in every WaitForCatchUp).

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "harness.h"

namespace tally::integration {
namespace {

using SteadyClock = std::chrono::steady_clock;

// `n` valid generated events.
std::vector<std::string> Generate(int64_t n, uint64_t seed) {
  std::vector<std::string> lines, keys;
  GenerateEvents(n, seed, &lines, &keys);
  return lines;
}

TEST(BatchingE2E, BacklogIsStoredInBatchesThatGrowWhileTheStoreIsBusy) {
  Stack stack;
  ASSERT_TRUE(stack.StartBroker(8));
  // ~11 MB under 20,000 distinct keys, which the partitioner (CRC32 of the key) spreads evenly:
  // about 1.4 MB per partition, far from the broker's 5 MB. (Without keys, librdkafka's sticky
  // partitioner can pile several MB onto one partition and the broker trims it.)
  const std::vector<std::string> lines = Generate(20'000, 11);
  std::vector<std::string> keys;
  for (size_t i = 0; i < lines.size(); ++i) keys.push_back("k" + std::to_string(i));
  ASSERT_TRUE(stack.Produce(lines, keys));
  // A zero window: a batch is handed over as soon as the worker is free, so without growing
  // while the worker is busy every batch would hold one message (20,000 batches).
  ASSERT_TRUE(stack.StartTallyd({"--batch-ms", "0", "--batch-max", "50000"}));
  ASSERT_TRUE(stack.WaitForCatchUp(Millis(120'000))) << stack.tallyd().LogTail();
  const std::string metrics = stack.MetricsText();
  ASSERT_EQ(MetricSum(metrics, "tally_log_trimmed_total").value_or(-1), 0);
  EXPECT_EQ(MetricSum(metrics, "tally_events_consumed_total").value_or(-1), 20'000);
  const double batches = MetricSum(metrics, "tally_batches_applied_total").value_or(-1);
  std::fprintf(stderr, "[batching] 20000 backlog events in %.0f batches\n", batches);
  EXPECT_GE(batches, 1);
  EXPECT_LE(batches, 20) << "a backlog should be stored in few large batches";
  // The batch-size histogram agrees: every batch counted, and some held over 1,000 messages.
  EXPECT_EQ(MetricSum(metrics, "tally_batch_messages_count").value_or(-1), batches);
  EXPECT_EQ(MetricSum(metrics, "tally_batch_messages_sum").value_or(-1), 20'000);
  EXPECT_LT(MetricSum(metrics, "tally_batch_messages_bucket", {"le=\"1000\""}).value_or(-1),
            batches);
}

TEST(BatchingE2E, QuietStreamIsStoredWithinTheBatchWindow) {
  Stack stack;
  ASSERT_TRUE(stack.StartBroker(1));
  ASSERT_TRUE(stack.StartTallyd({"--batch-ms", "50", "--batch-max", "50000"}));
  ASSERT_TRUE(stack.WaitForCatchUp(Millis(60'000)));  // joined the group, partitions assigned
  const std::vector<std::string> lines = Generate(40, 12);
  for (size_t i = 0; i < lines.size(); i += 10) {
    const std::vector<std::string> some(lines.begin() + i, lines.begin() + i + 10);
    const auto t0 = SteadyClock::now();
    ASSERT_TRUE(stack.Produce(some, {}));
    ASSERT_TRUE(stack.WaitForCatchUp(Millis(60'000)));
    const double ms = std::chrono::duration<double, std::milli>(SteadyClock::now() - t0).count();
    // A batch far from full must not wait for more events: 50 ms window, generous margin for
    // the produce round trip and a loaded machine.
    EXPECT_LT(ms, 3000) << "10 events took " << ms << " ms to be stored";
    std::this_thread::sleep_for(Millis(100));
  }
  const std::string metrics = stack.MetricsText();
  EXPECT_EQ(MetricSum(metrics, "tally_events_consumed_total").value_or(-1), 40);
}

TEST(BatchingE2E, ABatchHoldingBatchReadyMessagesDoesNotWaitOutTheWindow) {
  Stack stack;
  ASSERT_TRUE(stack.StartBroker(1));
  // A window far longer than the test may take: only --batch-ready hands the batches over.
  ASSERT_TRUE(stack.StartTallyd({"--batch-ms", "60000", "--batch-ready", "1"}));
  ASSERT_TRUE(stack.WaitForCatchUp(Millis(60'000)));  // partitions assigned
  const std::vector<std::string> lines = Generate(500, 13);
  const auto t0 = SteadyClock::now();
  ASSERT_TRUE(stack.Produce(lines, {}));
  ASSERT_TRUE(stack.WaitForCatchUp(Millis(30'000))) << stack.tallyd().LogTail();
  const double ms = std::chrono::duration<double, std::milli>(SteadyClock::now() - t0).count();
  EXPECT_LT(ms, 30'000) << "500 events took " << ms << " ms to be stored";
  EXPECT_EQ(MetricSum(stack.MetricsText(), "tally_events_consumed_total").value_or(-1), 500);
}

}  // namespace
}  // namespace tally::integration
