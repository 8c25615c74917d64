// A full disk: tallyd's data directory is a small tmpfs that fills up while events stream in.
// Ingest must pause safely (a log line saying what to do, tally_store_write_failing 1,
// tally_store_write_failures_total counting, /readyz 503), the process must stay up and keep
// answering queries, the store must not be corrupted, and ingest must resume by itself once the
// file system grows; then every answer equals the reference (nothing lost, nothing counted
// twice), also after a kill -9 and a restart on the same directory.
//
// Mounting a tmpfs needs root with CAP_SYS_ADMIN (as in CI); elsewhere the test is skipped.

#include <gtest/gtest.h>
#include <sys/mount.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <thread>

#include "harness.h"
#include "metrics_compare.h"
#include "reference.h"

namespace tally::integration {
namespace {

using SteadyClock = std::chrono::steady_clock;
constexpr const char* kAdminToken = "it-disk-admin";

double Metric(Stack& stack, const char* name) {
  return MetricSum(stack.MetricsText(), name).value_or(0);
}

// Unmounts on scope exit (lazily, so that a process still holding files cannot keep it).
struct Mount {
  std::string path;
  bool mounted = false;
  ~Mount() {
    if (mounted) ::umount2(path.c_str(), MNT_DETACH);
  }
};

TEST(DiskFullE2E, IngestPausesOnAFullDiskAndResumesWhenSpaceReturns) {
  gen::GenOptions o;
  o.seed = 77001;
  o.events = 60000;
  o.workspaces = 6;
  o.organizations = 2;
  o.users = 400;
  o.end_day = Stack::kToday;
  o.days = 90;
  o.duplicate_fraction = 0.02;
  Dataset data = GenerateDataset(o);

  Stack stack;
  stack.keys().push_back(KeySpec::Admin("it-admin", kAdminToken));
  Mount mount{stack.dir().File("data")};
  std::filesystem::create_directories(mount.path);
  if (::mount("tmpfs", mount.path.c_str(), "tmpfs", 0, "size=6m") != 0) {
    GTEST_SKIP() << "cannot mount a tmpfs at " << mount.path << " (needs CAP_SYS_ADMIN)";
  }
  mount.mounted = true;
  ASSERT_TRUE(stack.StartBroker(4));
  // Persist every 200 ms, so that the disk fills while the stream goes on.
  const std::vector<std::string> args = {"--persist-ms", "200"};
  ASSERT_TRUE(stack.StartTallyd(args));
  ASSERT_TRUE(stack.WaitForReady(Millis(60000)));

  // Produce in chunks, each once tallyd has caught up with the one before, until writes fail.
  // Producing stops then: the embedded broker keeps only the newest 5 MiB of a partition.
  constexpr size_t kChunk = 1000;
  size_t produced = 0;
  bool failing = false;
  while (produced < data.lines.size() && !failing) {
    const size_t end = std::min(data.lines.size(), produced + kChunk);
    ASSERT_TRUE(stack.Produce({data.lines.begin() + produced, data.lines.begin() + end},
                              {data.keys.begin() + produced, data.keys.begin() + end}));
    produced = end;
    for (auto deadline = SteadyClock::now() + std::chrono::seconds(60);;) {
      ASSERT_TRUE(stack.TallydRunning()) << stack.tallyd().LogTail();
      if (Metric(stack, "tally_store_write_failing") == 1) {
        failing = true;
        break;
      }
      if (stack.ReadIngestState().caught_up) break;
      ASSERT_LT(SteadyClock::now(), deadline) << "neither caught up nor failing";
      std::this_thread::sleep_for(Millis(50));
    }
  }
  std::fprintf(stderr, "[disk-full] writes failed after %zu of %zu events\n", produced,
               data.lines.size());
  ASSERT_TRUE(failing) << "the 6 MiB tmpfs never filled up";

  // Paused, not ready, counted, said, and still answering queries.
  std::this_thread::sleep_for(std::chrono::seconds(3));
  ASSERT_TRUE(stack.TallydRunning()) << stack.tallyd().LogTail();
  EXPECT_EQ(Metric(stack, "tally_store_write_failing"), 1);
  EXPECT_GE(Metric(stack, "tally_store_write_failures_total"), 1);
  auto ready = stack.http().Send("GET", "/readyz");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 503) << ready->body;
  EXPECT_NE(stack.tallyd().LogTail(20000).find("is full; free space or grow it"), std::string::npos)
      << stack.tallyd().LogTail();
  auto answer = stack.http().Send(
      "GET",
      "/api/v1/workspaces/metrics?workspace_uuid=" + UrlEncode(data.keys.front()) +
          "&entity=agents&metric=executions&aggregation="
          "count&period=90d",
      {{"Authorization", std::string("Bearer ") + kAdminToken}});
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->status, 200) << answer->body;

  // Space returns: ingest resumes by itself and catches up with what was produced.
  ASSERT_EQ(::mount("tmpfs", mount.path.c_str(), "tmpfs", MS_REMOUNT, "size=1g"), 0);
  const auto t_grow = SteadyClock::now();
  ASSERT_TRUE(stack.WaitForCatchUp(Millis(120000)));
  std::fprintf(stderr, "[disk-full] caught up %.1f s after the file system grew\n",
               std::chrono::duration<double>(SteadyClock::now() - t_grow).count());
  EXPECT_EQ(Metric(stack, "tally_store_write_failing"), 0);

  // The rest of the events, then every answer against the reference, before and after a crash.
  ASSERT_TRUE(stack.ProducePaced({data.lines.begin() + produced, data.lines.end()},
                                 {data.keys.begin() + produced, data.keys.end()}, 2000,
                                 Millis(120000)));
  ASSERT_TRUE(stack.WaitForCatchUp(Millis(120000)));
  ReferenceModel ref(Stack::kToday);
  for (const std::string& line : data.lines) ref.Add(line);
  std::vector<MetricsCall> calls;
  for (const std::string& ws : ref.WorkspacesByActivity()) {
    for (MetricsCall& c : AllCombinations(ws, ref.UsersByActivity(ws).front())) {
      if (c.query.group_by != "date" && c.granularity) continue;
      calls.push_back(std::move(c));
    }
  }
  {
    SCOPED_TRACE("after the disk was full");
    EXPECT_EQ(CheckAll(stack.http(), kAdminToken, ref, calls), 0);
  }
  stack.StopTallyd(SIGKILL);
  ASSERT_TRUE(stack.StartTallyd(args));
  ASSERT_TRUE(stack.WaitForCatchUp(Millis(120000)));
  {
    SCOPED_TRACE("after a restart");
    EXPECT_EQ(CheckAll(stack.http(), kAdminToken, ref, calls), 0);
  }
}

}  // namespace
}  // namespace tally::integration
