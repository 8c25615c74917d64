// Regression tests of ingest against a log that lost data, and of restarts in the same group.
//
// librdkafka's mock cluster keeps only the newest ~5 MB of each partition (docs/design.md). tally
// must say so loudly (error log + tally_log_trimmed_total) instead of silently skipping the lost
// offsets, and keep consuming what is left. Regressions covered:
//  - a partition whose stored offset fell below the log start used to wedge (no more fetches);
//  - a first start on a log that no longer begins at offset 0 used to be silent;
//  - a restart after kill -9 in the same consumer group used to wait ~90 s for the group, and
//    5-11 s on the embedded broker, which ignores static membership: there tallyd now reads its
//    partitions without a group join and is ready at once.

#include <gtest/gtest.h>

#include <csignal>

#include "harness.h"

namespace tally::integration {
namespace {

using SteadyClock = std::chrono::steady_clock;

double Trimmed(Stack& stack) {
  return MetricSum(stack.MetricsText(), "tally_log_trimmed_total").value_or(0);
}

TEST(LogTrimE2E, FirstStartOnTrimmedLogIsReportedAndConsumed) {
  Stack stack;
  ASSERT_TRUE(stack.StartBroker(1));
  std::vector<std::string> lines, keys;
  GenerateEvents(25'000, 7, &lines,
                 &keys);  // ~13 MB into one partition: the oldest part is trimmed
  ASSERT_TRUE(stack.Produce(lines, keys));
  ASSERT_TRUE(stack.StartTallyd());
  ASSERT_TRUE(stack.WaitForCatchUp(Millis(120'000)));
  EXPECT_GE(Trimmed(stack), 1) << stack.tallyd().LogTail();
  EXPECT_NE(stack.tallyd().LogTail(20'000).find("are NOT in the views"), std::string::npos)
      << stack.tallyd().LogTail();
}

TEST(LogTrimE2E, TrimPastStoredOffsetsIsReportedAndIngestGoesOn) {
  Stack stack;
  ASSERT_TRUE(stack.StartBroker(1));
  ASSERT_TRUE(stack.StartTallyd());
  std::vector<std::string> first, first_keys, second, second_keys;
  GenerateEvents(200, 1, &first, &first_keys);
  ASSERT_TRUE(stack.Produce(first, first_keys));
  ASSERT_TRUE(stack.WaitForCatchUp(Millis(60'000)));
  EXPECT_EQ(Trimmed(stack), 0);

  // While tallyd is down, the log moves on far enough to drop offsets it has not read yet.
  stack.StopTallyd(SIGTERM);
  GenerateEvents(25'000, 2, &second, &second_keys);
  ASSERT_TRUE(stack.Produce(second, second_keys));
  ASSERT_TRUE(stack.StartTallyd());
  ASSERT_TRUE(stack.WaitForCatchUp(Millis(120'000)))
      << "a trimmed partition must not wedge ingest\n"
      << stack.tallyd().LogTail();
  EXPECT_GE(Trimmed(stack), 1) << stack.tallyd().LogTail();
  EXPECT_NE(stack.tallyd().LogTail(20'000).find("NOT in the views"), std::string::npos);
}

// Kills tallyd once it has caught up, restarts it and returns the seconds until it has ingested
// events produced after the restart.
double SecondsToIngestAfterKill(const std::vector<std::string>& extra_args) {
  Stack stack;
  EXPECT_TRUE(stack.StartBroker(2));
  EXPECT_TRUE(stack.StartTallyd(extra_args));
  std::vector<std::string> lines, keys;
  GenerateEvents(500, 3, &lines, &keys);
  EXPECT_TRUE(stack.Produce(lines, keys));
  EXPECT_TRUE(stack.WaitForCatchUp(Millis(60'000)));
  stack.StopTallyd(SIGKILL);
  auto t0 = SteadyClock::now();
  EXPECT_TRUE(stack.StartTallyd(extra_args));
  std::vector<std::string> more, more_keys;
  GenerateEvents(100, 4, &more, &more_keys);
  EXPECT_TRUE(stack.Produce(more, more_keys));
  EXPECT_TRUE(stack.WaitForCatchUp(Millis(25'000))) << stack.tallyd().LogTail();
  return std::chrono::duration<double>(SteadyClock::now() - t0).count();
}

TEST(LogTrimE2E, RestartAfterKillResumesAtOnceOnTheEmbeddedBroker) {
  // The embedded broker ignores static membership: a restarted group member would wait out the
  // killed one's session (5-11 s). tallyd reads its partitions there without a group join.
  double seconds = SecondsToIngestAfterKill({});
  std::fprintf(stderr, "[log-trim] ingesting again %.2f s after the restart\n", seconds);
  EXPECT_LT(seconds, 3.0);
}

TEST(LogTrimE2E, RestartAfterKillRejoinsTheSameGroup) {
  // The group path that a real cluster takes: the restarted member gets its partitions back.
  double seconds = SecondsToIngestAfterKill({"--group-join", "always"});
  std::fprintf(stderr, "[log-trim] group member ingesting again %.1f s after the restart\n",
               seconds);
}

}  // namespace
}  // namespace tally::integration
