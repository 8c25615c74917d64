// A slow disk: tallyd's data directory is an ext4 file system on a loop device whose writes the
// kernel throttles (the blkio cgroup tallyd is moved into: 256 KiB/s and 20 writes/s, a disk
// thousands of times slower than a normal one). While events stream in, every query still
// answers 200 promptly from the views (ingest slows down, queries do not wait for the disk);
// `kill -9` in the middle of the slow writes loses nothing; once the throttle is lifted ingest
// catches up and every endpoint family equals the references.
//
// Needs root, a loop device, mkfs.ext4 and the cgroup v1 blkio controller (as in CI); elsewhere
// the test is skipped.

#include <gtest/gtest.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "group.h"
#include "harness.h"
#include "metrics_compare.h"

namespace tally::integration {
namespace {

using Clock = std::chrono::steady_clock;
constexpr const char* kBlkio = "/sys/fs/cgroup/blkio";

bool WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  out.flush();
  return static_cast<bool>(out);
}

// A loop-mounted ext4 file system and a blkio cgroup throttling its writes; undone on
// destruction (the throttled processes are moved back to the root cgroup first).
class SlowDisk {
 public:
  // Empty on success, else why the test cannot run here.
  std::string Create(const std::string& image, const std::string& mount_point) {
    if (::geteuid() != 0) return "needs root";
    if (!std::filesystem::exists(std::string(kBlkio) + "/blkio.throttle.write_bps_device")) {
      return "no cgroup v1 blkio controller at " + std::string(kBlkio);
    }
    image_ = image;
    if (std::system(("truncate -s 512M " + image).c_str()) != 0) return "truncate failed";
    const std::string dev_file = image + ".dev";
    if (std::system(("losetup -f --show " + image + " > " + dev_file + " 2>/dev/null").c_str()) !=
        0) {
      return "no free loop device (losetup)";
    }
    device_ = ReadFileOrEmpty(dev_file);
    device_.erase(device_.find_last_not_of(" \n") + 1);
    if (std::system(("mkfs.ext4 -q " + device_ + " >/dev/null 2>&1").c_str()) != 0) {
      return "mkfs.ext4 failed on " + device_;
    }
    std::filesystem::create_directories(mount_point);
    if (::mount(device_.c_str(), mount_point.c_str(), "ext4", 0, nullptr) != 0) {
      return "cannot mount " + device_;
    }
    mount_point_ = mount_point;
    majmin_ = ReadFileOrEmpty("/sys/block/" + device_.substr(device_.rfind('/') + 1) + "/dev");
    majmin_.erase(majmin_.find_last_not_of(" \n") + 1);
    cgroup_ = std::string(kBlkio) + "/tally-it-slow-disk-" + std::to_string(::getpid());
    std::filesystem::create_directories(cgroup_);
    return "";
  }

  // Throttles writes of the processes in the cgroup to the device (0: unthrottled).
  bool Throttle(int64_t bytes_per_s, int64_t writes_per_s) {
    return WriteFile(cgroup_ + "/blkio.throttle.write_bps_device",
                     majmin_ + " " + std::to_string(bytes_per_s)) &&
           WriteFile(cgroup_ + "/blkio.throttle.write_iops_device",
                     majmin_ + " " + std::to_string(writes_per_s));
  }
  // Moves process `pid` (every thread) into the cgroup.
  bool Add(pid_t pid) { return WriteFile(cgroup_ + "/cgroup.procs", std::to_string(pid)); }

  ~SlowDisk() {
    if (!cgroup_.empty()) {
      for (const std::string& line : Lines(ReadFileOrEmpty(cgroup_ + "/cgroup.procs"))) {
        WriteFile(std::string(kBlkio) + "/cgroup.procs", line);
      }
      std::filesystem::remove(cgroup_);
    }
    if (!mount_point_.empty()) ::umount2(mount_point_.c_str(), MNT_DETACH);
    if (!device_.empty()) (void)std::system(("losetup -d " + device_).c_str());
    if (!image_.empty()) std::filesystem::remove(image_);
  }

 private:
  static std::vector<std::string> Lines(const std::string& text) {
    std::vector<std::string> out;
    size_t start = 0;
    while (start < text.size()) {
      size_t end = text.find('\n', start);
      if (end == std::string::npos) end = text.size();
      if (end > start) out.push_back(text.substr(start, end - start));
      start = end + 1;
    }
    return out;
  }

  std::string image_, device_, mount_point_, majmin_, cgroup_;
};

TEST(SlowDiskE2E, QueriesKeepAnsweringWhileTheDiskCrawls) {
  gen::GenOptions o;
  o.seed = 77002;
  o.events = 24000;
  o.workspaces = 6;
  o.organizations = 2;
  o.users = 300;
  o.end_day = Stack::kToday;
  o.days = 60;
  o.duplicate_fraction = 0.02;
  const Dataset data = GenerateDataset(o);

  Stack stack;
  stack.keys().push_back(KeySpec::Admin("it-admin", kGroupAdminToken));
  SlowDisk disk;
  if (std::string why = disk.Create(stack.dir().File("disk.img"), stack.dir().File("data"));
      !why.empty()) {
    GTEST_SKIP() << "no throttled disk: " << why;
  }
  ASSERT_TRUE(stack.StartBroker(4));
  // Persist every 200 ms: the slow disk is in the ingest path all the time.
  const std::vector<std::string> args = {"--persist-ms", "200"};
  ASSERT_TRUE(stack.StartTallyd(args));
  ASSERT_TRUE(stack.WaitForReady(Millis(60000)));
  const Dataset first = Slice(data, 0, 4000);
  ASSERT_TRUE(stack.Produce(first.lines, first.keys));
  ASSERT_TRUE(stack.WaitForCatchUp(Millis(60000)));

  ASSERT_TRUE(disk.Throttle(256 << 10, 20));
  ASSERT_TRUE(disk.Add(stack.tallyd().pid()));
  // For 8 s: the next 12,000 events stream in (600 every 400 ms), and 1 s in a checkpoint
  // (POST /admin/v1/snapshot) makes RocksDB flush its memtables to the crawling disk. Meanwhile
  // every query answers 200, and promptly.
  std::atomic<bool> produced_ok{true};
  std::thread streaming([&stack, &data, &produced_ok] {
    for (size_t begin = 4000; begin < 16000; begin += 600) {
      const Dataset burst = Slice(data, begin, begin + 600);
      if (!stack.Produce(burst.lines, burst.keys)) produced_ok = false;
      std::this_thread::sleep_for(std::chrono::milliseconds(400));
    }
  });
  const std::string snapshot = stack.dir().File("data/snapshot");
  std::atomic<double> snapshot_s{-1};
  std::thread snapshotting;
  const std::string ws = data.keys.front();
  const std::vector<std::string> targets = {
      "/api/v1/workspaces/metrics?workspace_uuid=" + UrlEncode(ws) +
          "&entity=agents&metric=executions&aggregation=count&period=30d&group_by=user",
      "/api/agents/leaderboard?workspace_uuid=" + UrlEncode(ws) +
          "&date_from=2026-01-01&date_to=2026-03-01",
      "/api/v1/monitoring/" + UrlEncode(ws) + "/superagents?limit=20",
      "/v1/analytics/requests/top-10-agents-by-requests?startDate=2026-02-01&endDate=2026-03-01"};
  std::vector<double> latencies_ms;
  int errors = 0;
  const auto t0 = Clock::now();
  while (Elapsed(t0) < 8) {
    if (!snapshotting.joinable() && Elapsed(t0) > 1) {
      const std::string host = stack.http().host_port();
      snapshotting = std::thread([host, snapshot, &snapshot_s] {
        HttpClient client(host);
        const auto s0 = Clock::now();
        auto r = client.Send("POST", "/admin/v1/snapshot",
                             {{"Authorization", std::string("Bearer ") + kGroupAdminToken}},
                             "{\"path\": \"" + snapshot + "\"}");
        if (r && r->status == 200) snapshot_s = Elapsed(s0);
      });
    }
    for (const std::string& target : targets) {
      const auto q0 = Clock::now();
      auto r = stack.http().Send("GET", target,
                                 {{"Authorization", std::string("Bearer ") + kGroupAdminToken}});
      latencies_ms.push_back(Elapsed(q0) * 1000);
      if (!r || r->status != 200) ++errors;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::sort(latencies_ms.begin(), latencies_ms.end());
  const double p99 = latencies_ms[latencies_ms.size() * 99 / 100];
  const std::string metrics = stack.MetricsText();
  const double consumed = MetricSum(metrics, "tally_events_consumed_total").value_or(0);
  std::fprintf(stderr,
               "[slow_disk] %zu queries in 8 s on a throttled disk: %d errors, p50 %.1f ms, p99 "
               "%.1f ms, max %.1f ms; %.0f events consumed; the checkpoint %s\n",
               latencies_ms.size(), errors, latencies_ms[latencies_ms.size() / 2], p99,
               latencies_ms.back(), consumed,
               snapshot_s.load() < 0
                   ? "was still writing"
                   : ("took " + std::to_string(snapshot_s.load()) + " s").c_str());
  EXPECT_EQ(errors, 0);
  EXPECT_LT(p99, 500) << "queries waited for the disk";
  EXPECT_TRUE(snapshot_s.load() < 0 || snapshot_s.load() > 1)
      << "the checkpoint did not meet the slow disk: the throttle is not in effect";

  // kill -9 while slow writes are in flight; restart unthrottled on the same directory.
  stack.StopTallyd(SIGKILL);
  snapshotting.join();
  streaming.join();
  ASSERT_TRUE(produced_ok.load());
  // A checkpoint is built beside its path and renamed into place when complete.
  if (std::filesystem::exists(snapshot)) {
    EXPECT_TRUE(std::filesystem::exists(snapshot + "/CURRENT"));
  }
  ASSERT_TRUE(disk.Throttle(0, 0));
  const Dataset rest = Slice(data, 16000, data.lines.size());
  ASSERT_TRUE(stack.Produce(rest.lines, rest.keys));
  ASSERT_TRUE(stack.StartTallyd(args));
  ASSERT_TRUE(stack.WaitForCatchUp(Millis(120000)));
  const References refs(data.lines);
  Group single(&stack, 4);
  single.AddExternal("tallyd", stack.http().host_port());
  CheckEveryInstance(single, refs, refs.metrics.WorkspacesByActivity(),
                     "after a slow disk and a kill -9");
}

}  // namespace
}  // namespace tally::integration
