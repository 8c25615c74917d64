// Kill loops: `kill -9` at random moments, many times, with exact answers after every restart.
//
// KilledDuringIngestPersistsAndCheckpoints: one tallyd persisting every 30 ms, killed in each
// round either while it ingests a streamed chunk or a few milliseconds into a checkpoint
// (POST /admin/v1/snapshot) taken while it ingests. After every restart it catches up and a
// sample of workspace metrics equals the reference of everything produced so far; at the end
// every endpoint family does. A checkpoint interrupted by the kill never leaves a half-written
// snapshot at its path (the path is absent, or a complete store); a replica started from the last
// complete snapshot continues from its offsets and answers exactly too.
//
// GroupMembersKilledDuringHandovers: a group of three, where each round starts a handover (a new
// member joins, or one stops gracefully) and SIGKILLs a random member a random moment into it,
// restarting it soon after; once the group settles every endpoint family through every instance
// equals the references.
//
// The rounds come from a seeded RNG (TALLY_IT_SEED replays them); TALLY_KILL_LOOP_ROUNDS sets how
// many (default 10 and 3: the long version is one command, see docs/reliability.md).

#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "group.h"
#include "harness.h"
#include "http/testing/free_port.h"
#include "metrics_compare.h"

namespace tally::integration {
namespace {

using Clock = std::chrono::steady_clock;

int Rounds(int fallback) {
  const char* s = std::getenv("TALLY_KILL_LOOP_ROUNDS");
  return s != nullptr && std::atoi(s) > 0 ? std::atoi(s) : fallback;
}

// A sample of workspace metrics of the two busiest workspaces against `ref`.
int CheckSample(HttpClient& http, const ReferenceModel& ref, size_t round) {
  std::vector<MetricsCall> sample;
  const std::vector<std::string> workspaces = ref.WorkspacesByActivity();
  for (size_t w = 0; w < std::min<size_t>(2, workspaces.size()); ++w) {
    std::vector<MetricsCall> all = AllCombinations(workspaces[w], "");
    for (size_t i = round % 7; i < all.size(); i += 7) sample.push_back(all[i]);
  }
  return CheckAll(http, kGroupAdminToken, ref, sample, 5);
}

TEST(KillLoopE2E, KilledDuringIngestPersistsAndCheckpoints) {
  const int rounds = Rounds(10);
  constexpr size_t kChunk = 700;
  const Dataset data = GenerateDataset(StreamOptions(20261212, 1500 + kChunk * rounds, 5, 200));
  std::mt19937_64 rng(TestSeed("kill_loop"));
  Stack stack;
  stack.keys().push_back(KeySpec::Admin("it-admin", kGroupAdminToken));
  // 8 partitions: the embedded broker keeps 5 MiB of each, enough for the long version's events
  // (the replica reads from the last snapshot's offsets on).
  constexpr int kPartitions = 8;
  ASSERT_TRUE(stack.StartBroker(kPartitions));
  const std::vector<std::string> flags = {"--persist-ms", "30"};
  ASSERT_TRUE(stack.StartTallyd(flags));
  SliceCursor cursor(&data);
  const std::vector<std::string>& produced = cursor.taken();
  const Dataset first = cursor.Take(1500);
  ASSERT_TRUE(stack.Produce(first.lines, first.keys));
  ASSERT_TRUE(stack.WaitForCatchUp(Millis(60000)));

  int ingest_kills = 0, checkpoint_kills = 0, complete_snapshots = 0, absent_snapshots = 0;
  std::string last_snapshot;
  for (int round = 0; round < rounds; ++round) {
    const Dataset chunk = cursor.Take(kChunk);
    const bool checkpoint = rng() % 2 == 1;
    const std::string snapshot = stack.dir().File("snap-" + std::to_string(round));
    BackgroundProduce producing(&stack, chunk.lines, chunk.keys);
    std::this_thread::sleep_for(std::chrono::milliseconds(5 + rng() % 200));
    std::thread snapshotting;
    if (checkpoint) {
      const std::string host = stack.http().host_port();
      snapshotting = std::thread([host, snapshot] {
        HttpClient client(host);
        (void)client.Send("POST", "/admin/v1/snapshot",
                          {{"Authorization", std::string("Bearer ") + kGroupAdminToken}},
                          "{\"path\": \"" + snapshot + "\"}");
      });
      std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 40));
    }
    stack.StopTallyd(SIGKILL);
    if (snapshotting.joinable()) snapshotting.join();
    ++(checkpoint ? checkpoint_kills : ingest_kills);
    if (checkpoint) {
      // RocksDB builds a checkpoint beside its path and renames it into place when complete.
      if (std::filesystem::exists(snapshot)) {
        EXPECT_TRUE(std::filesystem::exists(snapshot + "/CURRENT")) << snapshot;
        ++complete_snapshots;
        last_snapshot = snapshot;
      } else {
        ++absent_snapshots;
      }
    }
    ASSERT_TRUE(producing.Join());
    ASSERT_TRUE(stack.StartTallyd(flags)) << "restart after round " << round;
    ASSERT_TRUE(stack.WaitForCatchUp(Millis(60000))) << "round " << round;
    ReferenceModel ref(Stack::kToday);
    for (const std::string& line : produced) ref.Add(line);
    ASSERT_EQ(CheckSample(stack.http(), ref, round), 0) << "after round " << round;
  }
  std::fprintf(stderr,
               "[kill_loop] %d kills during ingest, %d during checkpoints (%d snapshots complete, "
               "%d absent)\n",
               ingest_kills, checkpoint_kills, complete_snapshots, absent_snapshots);
  EXPECT_EQ(ingest_kills + checkpoint_kills, rounds);

  const References refs(produced);
  const std::vector<std::string> workspaces = refs.metrics.WorkspacesByActivity();
  Group single(&stack, kPartitions);
  single.AddExternal("tallyd", stack.http().host_port());
  CheckEveryInstance(single, refs, workspaces, "after the kill loop");

  // A replica from the last complete snapshot (or a fresh one) catches up from its offsets and
  // answers exactly.
  if (last_snapshot.empty()) {
    last_snapshot = stack.dir().File("snap-final");
    auto r = stack.http().Send("POST", "/admin/v1/snapshot",
                               {{"Authorization", std::string("Bearer ") + kGroupAdminToken}},
                               "{\"path\": \"" + last_snapshot + "\"}");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body;
  }
  const uint16_t port = http::testing::FreePort();
  ASSERT_NE(port, 0);
  Process replica;
  const std::string replica_port = stack.dir().File("replica.port");
  ASSERT_TRUE(replica.Start({TallydBinary(),
                             "--brokers",
                             stack.bootstrap(),
                             "--topic",
                             Stack::kTopic,
                             "--group",
                             "tally-replica",
                             "--data-dir",
                             stack.dir().File("replica-data"),
                             "--from-snapshot",
                             last_snapshot,
                             "--listen",
                             "127.0.0.1:" + std::to_string(port),
                             "--port-file",
                             replica_port,
                             "--keys",
                             stack.dir().File("keys.toml"),
                             "--cache-ttl",
                             "0",
                             "--now",
                             Stack::kNow,
                             "--max-future",
                             "1d"},
                            stack.dir().File("replica")));
  auto addr = WaitForFile(replica_port, Millis(60000), &replica);
  ASSERT_TRUE(addr) << addr.error().message;
  Group replicas(&stack, kPartitions);
  replicas.AddExternal("replica", *addr);
  // Caught up: every partition's next offset equals the main instance's (itself caught up).
  auto offsets = [](HttpClient& http) {
    std::map<int, int64_t> out;
    auto r = http.Send("GET", "/readyz");
    if (!r || r->status != 200) return out;
    nlohmann::json j = nlohmann::json::parse(r->body, nullptr, false);
    if (j.is_discarded()) return out;
    for (const auto& p : j["details"]["ingest"]["partitions"]) {
      out[p["partition"].get<int>()] = p["next_offset"].get<int64_t>();
    }
    return out;
  };
  const std::map<int, int64_t> want = offsets(stack.http());
  ASSERT_EQ(want.size(), static_cast<size_t>(kPartitions));
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  while (offsets(*replicas.instances().front().http) != want && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  ASSERT_EQ(offsets(*replicas.instances().front().http), want) << replica.LogTail();
  auto replica_metrics = replicas.instances().front().http->Send("GET", "/metrics");
  ASSERT_TRUE(replica_metrics);
  ASSERT_EQ(MetricSum(replica_metrics->body, "tally_log_trimmed_total").value_or(0), 0)
      << "the broker trimmed events the replica needed";
  CheckEveryInstance(replicas, refs, workspaces, "replica from a snapshot taken in the loop");
  replica.Stop(SIGKILL);
}

TEST(KillLoopE2E, GroupMembersKilledDuringHandovers) {
  const int rounds = Rounds(3);
  constexpr size_t kChunk = 600;
  const Dataset data = GenerateDataset(StreamOptions(20261213, 2000 + kChunk * rounds, 12, 200));
  std::mt19937_64 rng(TestSeed("kill_loop_group"));
  Stack stack;
  stack.keys().push_back(KeySpec::Admin("it-admin", kGroupAdminToken));
  ASSERT_TRUE(stack.StartBroker(kGroupPartitions));
  ASSERT_TRUE(WriteKeysFile(stack.dir().File("keys.toml"), stack.keys()));
  Group group(&stack);
  std::vector<std::string> ids = {"node-a", "node-b", "node-c"};
  for (const std::string& id : ids) ASSERT_TRUE(group.Start(id, 1));
  SliceCursor cursor(&data);
  const std::vector<std::string>& produced = cursor.taken();
  const Dataset first = cursor.Take(2000);
  ASSERT_TRUE(stack.Produce(first.lines, first.keys));
  ASSERT_TRUE(group.WaitSettled(Millis(120000)));

  int joins = 0;
  for (int round = 0; round < rounds; ++round) {
    const Dataset chunk = cursor.Take(kChunk);
    BackgroundProduce producing(&stack, chunk.lines, chunk.keys);
    // Start a handover: a newcomer joins while the group has three, else one stops gracefully.
    std::string moved;
    if (group.instances().size() <= 3) {
      moved = "node-" + std::string(1, static_cast<char>('d' + joins++));
      ASSERT_TRUE(group.Start(moved, 1));
    } else {
      moved = group.instances()[rng() % group.instances().size()].id;
      group.Kill(moved, SIGTERM);
    }
    // A random moment into it, a random member dies; it restarts on its data directory soon.
    const int delay_ms = static_cast<int>(rng() % 3000);
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    const std::string victim = group.instances()[rng() % group.instances().size()].id;
    group.Kill(victim, SIGKILL);
    std::fprintf(stderr, "[kill_loop] round %d: handover of %s, kill -9 of %s %d ms into it\n",
                 round, moved.c_str(), victim.c_str(), delay_ms);
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 1000));
    ASSERT_TRUE(group.Start(victim, 1));
    ASSERT_TRUE(producing.Join());
    // The embedded broker ignores static membership: the killed member's old session stays in
    // the group until session.timeout.ms (3 s) and then brings one more rebalance. Settled must
    // hold past it, not just in the calm before it.
    ASSERT_TRUE(group.WaitStable(Millis(120000))) << "round " << round;
    const References refs(produced);
    CheckEveryInstance(group, refs, refs.metrics.WorkspacesByActivity(),
                       ("after kill loop round " + std::to_string(round)).c_str());
  }
}

}  // namespace
}  // namespace tally::integration
