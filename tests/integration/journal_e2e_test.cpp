// The ingest journal end to end (lib/ingest/journal.h): on the embedded broker, which keeps only
// the newest 5 MiB of a partition, tallyd persists every few seconds, not every MiB, because
// what it staged but has not persisted is also in <data-dir>/journal. This test kills tallyd
// while events are staged, lets the broker drop them, and checks that the restarted tallyd
// counts every event exactly once (compared with the reference model of the raw events).

#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "harness.h"
#include "kafka/admin.h"
#include "metrics_compare.h"
#include "reference.h"

namespace tally::integration {
namespace {

constexpr const char* kAdminToken = "it-journal-admin-token";

// Bytes in the journal's segment files (0 when there is none).
uint64_t JournalBytes(const std::string& data_dir) {
  uint64_t bytes = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(data_dir + "/journal", ec)) {
    if (e.path().extension() == ".journal") bytes += e.file_size(ec);
  }
  return bytes;
}

TEST(JournalE2E, StagedEventsTheBrokerDroppedAreCountedAfterAKill) {
  std::vector<std::string> lines, keys;
  GenerateEvents(9'500, 31, &lines, &keys);  // about 550 bytes each, one partition
  ReferenceModel ref(Stack::kToday);
  for (const std::string& line : lines) ASSERT_EQ(ref.Add(line), RefVerdict::kAccepted);

  Stack stack;
  stack.keys().push_back(KeySpec::Admin("it-admin", kAdminToken));
  ASSERT_TRUE(stack.StartBroker(1));
  // Persists only when the stream pauses (1 s without a batch): never within this test's
  // windows, except that pause, which the loop below steps around.
  const std::vector<std::string> args = {"--persist-ms", "600000"};
  ASSERT_TRUE(stack.StartTallyd(args));

  // 2,000 events (about 1.1 MB, more than the MiB per partition after which tallyd persisted
  // before it had a journal), then small chunks until tallyd is caught up with events staged
  // and journaled, not persisted: it is frozen (SIGSTOP) at that moment, then killed.
  size_t produced = 2000;
  ASSERT_TRUE(
      stack.Produce({lines.begin(), lines.begin() + 2000}, {keys.begin(), keys.begin() + 2000}));
  bool staged = false;
  for (int attempt = 0; attempt < 20 && !staged; ++attempt) {
    ASSERT_TRUE(stack.WaitForCatchUp(Millis(60'000)));
    stack.tallyd().Signal(SIGSTOP);
    staged = JournalBytes(stack.dir().File("data")) > 0;
    if (staged) break;
    stack.tallyd().Signal(SIGCONT);  // it had persisted: stage some more
    ASSERT_TRUE(stack.Produce({lines.begin() + produced, lines.begin() + produced + 50},
                              {keys.begin() + produced, keys.begin() + produced + 50}));
    produced += 50;
  }
  ASSERT_TRUE(staged) << "tallyd persisted before every freeze: the journal was never tested";
  stack.StopTallyd(SIGKILL);
  const uint64_t journal_bytes = JournalBytes(stack.dir().File("data"));
  EXPECT_GT(journal_bytes, 0u);

  // While tallyd is down, the rest (about 4.5 MiB with the broker's framing: less than the
  // 5 MiB the broker keeps, so none of it is lost) pushes the oldest staged events out of the
  // broker.
  ASSERT_TRUE(stack.Produce({lines.begin() + produced, lines.end()},
                            {keys.begin() + produced, keys.end()}));
  auto marks = kafka::Watermarks(stack.bootstrap(), Stack::kTopic, 0, 10'000);
  ASSERT_TRUE(marks) << marks.error().message;
  std::fprintf(stderr,
               "[journal] %zu events staged at the kill, journal %llu bytes, log %lld..%lld\n",
               produced, static_cast<unsigned long long>(journal_bytes),
               static_cast<long long>(marks->first), static_cast<long long>(marks->second));
  ASSERT_GT(marks->first, 0) << "the broker kept every staged event: nothing to recover";
  ASSERT_LT(marks->first, static_cast<int64_t>(produced))
      << "the broker dropped events tallyd never read: the test's sizes are off";

  ASSERT_TRUE(stack.StartTallyd(args));
  ASSERT_TRUE(stack.WaitForCatchUp(Millis(120'000))) << stack.tallyd().LogTail();
  EXPECT_NE(stack.tallyd().LogTail(20'000).find("from the journal"), std::string::npos)
      << stack.tallyd().LogTail();
  const std::string metrics = stack.MetricsText();
  EXPECT_EQ(MetricSum(metrics, "tally_log_trimmed_total").value_or(0), 0) << metrics;
  EXPECT_EQ(MetricSum(metrics, "tally_events_duplicate_total").value_or(0), 0);

  std::vector<MetricsCall> calls;
  for (const std::string& ws : ref.WorkspacesByActivity()) {
    for (MetricsCall& c : AllCombinations(ws, ref.UsersByActivity(ws).front())) {
      if (c.query.group_by != "date" && c.granularity) continue;
      calls.push_back(std::move(c));
    }
  }
  EXPECT_EQ(CheckAll(stack.http(), kAdminToken, ref, calls), 0);

  // Everything is persisted by a clean stop: the journal is empty again.
  stack.StopTallyd(SIGTERM);
  EXPECT_EQ(JournalBytes(stack.dir().File("data")), 0u);
}

}  // namespace
}  // namespace tally::integration
