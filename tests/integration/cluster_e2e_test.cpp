// A group of tallyd instances on one consumer group: `tally broker --partitions 12`, three
// tallyd with one --group and their own --advertise-url and data directories, generated events
// produced through Kafka. Workspace metrics answered through each instance (locally or forwarded
// to the owner of the workspace's partition) must equal the reference model; the leaderboard and
// the Super Agents list must be the same bytes through every instance. Then one instance is
// killed with SIGKILL: within 60 s both survivors own every partition and answer exactly again.
// Then a fourth instance joins with an empty data directory and, once ready, answers exactly.
// Then a fifth joins: with two standby replicas each partition now lives on three of the four
// instances, and each instance drops the views of the partitions it neither owns nor keeps
// (--drop-idle-partitions-after) and still answers exactly. Finally the newest instance but one
// is killed: the survivors take its partitions and keep standbys of every partition again,
// restoring from the log those whose views they had dropped, and answer exactly.

#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "group.h"
#include "harness.h"
#include "kafka/admin.h"
#include "metrics_compare.h"

namespace tally::integration {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
constexpr const char* kTenantToken = "it-cluster-tenant";

// A key holding one workspace reads it through every instance (owner or not) and nothing else:
// another workspace is 403 everywhere, whichever instance owns it.
void CheckTenantEverywhere(Group& group, const ReferenceModel& ref,
                           const std::vector<std::string>& workspaces) {
  std::vector<MetricsCall> mine = AllCombinations(workspaces.front(), "");
  mine.resize(std::min<size_t>(mine.size(), 20));
  for (Instance& in : group.instances()) {
    EXPECT_EQ(CheckAll(*in.http, kTenantToken, ref, mine, 3), 0) << "through " << in.id;
    for (size_t w = 1; w < workspaces.size(); ++w) {
      const std::pair<std::string, std::string> auth{"Authorization",
                                                     std::string("Bearer ") + kTenantToken};
      auto metrics =
          in.http->Send("GET",
                        "/api/v1/workspaces/metrics?workspace_uuid=" + UrlEncode(workspaces[w]) +
                            "&entity=agents&metric=executions&aggregation=count&period=90d",
                        {auth});
      ASSERT_TRUE(metrics);
      EXPECT_EQ(metrics->status, 403) << in.id << " " << workspaces[w] << ": " << metrics->body;
      auto listing = in.http->Send(
          "GET", "/api/v1/monitoring/" + UrlEncode(workspaces[w]) + "/superagents", {auth});
      ASSERT_TRUE(listing);
      EXPECT_EQ(listing->status, 403) << in.id << " " << workspaces[w] << ": " << listing->body;
    }
  }
}

TEST(ClusterE2E, EveryInstanceAnswersExactlyThroughFailoverAndScaleUp) {
  gen::GenOptions o;
  o.seed = 20261207;
  o.events = 12000;
  o.workspaces = 12;
  o.organizations = 4;
  o.users = 300;
  o.end_day = Stack::kToday;
  o.days = 60;
  o.duplicate_fraction = 0.02;
  Dataset data = GenerateDataset(o);
  References refs(data.lines);
  ASSERT_GE(refs.requests.Organizations().size(), 2u);

  Stack stack;
  stack.keys().push_back(KeySpec::Admin("it-admin", kGroupAdminToken));
  const std::vector<std::string> workspaces = refs.metrics.WorkspacesByActivity();
  ASSERT_EQ(workspaces.size(), 12u);
  {
    // A tenant owning one workspace, for the isolation checks through every instance.
    KeySpec tenant;
    tenant.name = "it-tenant";
    tenant.token = kTenantToken;
    tenant.user_id = "tenant-user";
    tenant.workspaces[workspaces.front()] = "owner";
    stack.keys().push_back(tenant);
  }
  ASSERT_TRUE(stack.StartBroker(kGroupPartitions));
  ASSERT_TRUE(WriteKeysFile(stack.dir().File("keys.toml"), stack.keys()));
  Group group(&stack);
  for (const char* id : {"node-a", "node-b", "node-c"}) ASSERT_TRUE(group.Start(id));
  ASSERT_TRUE(stack.Produce(data.lines, data.keys));
  const auto t_settle = Clock::now();
  ASSERT_TRUE(group.WaitSettled(Millis(120000)));
  std::fprintf(stderr, "[cluster_e2e] three instances settled in %.1f s\n", Elapsed(t_settle));

  // Every instance owns some partitions: the test exercises forwarding, not one busy node.
  for (Instance& in : group.instances()) {
    auto r = in.http->Send("GET", "/readyz");
    ASSERT_TRUE(r);
    json j = json::parse(r->body);
    for (const json& m : j["details"]["cluster"]["routing"]["members"]) {
      if (m["instance_id"] == in.id) {
        EXPECT_FALSE(m["owned"].empty()) << r->body;
      }
    }
  }
  ASSERT_TRUE(group.WaitStable(Millis(120000)));  // no rebalance still due
  CheckEveryInstance(group, refs, workspaces, "three instances");
  CheckTenantEverywhere(group, refs.metrics, workspaces);

  // The forwarded answers went through the owners: at least one instance forwarded.
  double forwarded = 0;
  for (Instance& in : group.instances()) {
    auto r = in.http->Send("GET", "/metrics");
    ASSERT_TRUE(r);
    forwarded += MetricSum(r->body, "tally_cluster_forwarded_requests_total").value_or(0);
  }
  EXPECT_GT(forwarded, 0);

  // SIGKILL one instance: within 60 s the survivors own everything and answer exactly.
  auto sum_metric = [&group](const char* name) {
    double sum = 0;
    for (Instance& in : group.instances()) {
      auto r = in.http->Send("GET", "/metrics");
      if (r) sum += MetricSum(r->body, name).value_or(0);
    }
    return sum;
  };
  auto gained = [&] { return sum_metric("tally_cluster_partitions_gained_total"); };
  auto warm = [&] { return sum_metric("tally_partitions_taken_from_standby_total"); };
  // Settled: each instance keeps caught-up standbys of the 8 partitions it does not own.
  for (Instance& in : group.instances()) {
    auto r = in.http->Send("GET", "/readyz");
    ASSERT_TRUE(r);
    json j = json::parse(r->body);
    size_t standbys = 0, owned = 0;
    for (const json& p : j["details"]["ingest"]["partitions"]) standbys += p["role"] == "standby";
    for (const json& m : j["details"]["cluster"]["routing"]["members"]) {
      if (m["instance_id"] == in.id) owned = m["owned"].size();
    }
    EXPECT_EQ(standbys + owned, static_cast<size_t>(kGroupPartitions)) << in.id << ": " << r->body;
  }
  group.Kill("node-b");
  const double gained_before = gained();
  const double warm_before = warm();
  const auto t_kill = Clock::now();
  ASSERT_TRUE(group.WaitSettled(Millis(60000)));
  const double failover_s = Elapsed(t_kill);
  std::fprintf(stderr, "[cluster_e2e] failover after SIGKILL settled in %.1f s\n", failover_s);
  EXPECT_LT(failover_s, 60);
  EXPECT_GT(gained(), gained_before) << "the survivors took the killed instance's partitions";
  // Each survivor kept a standby of every partition it took: none was replayed from the log.
  EXPECT_EQ(warm() - warm_before, gained() - gained_before);
  ASSERT_TRUE(group.WaitStable(Millis(120000)));  // no rebalance still due
  CheckEveryInstance(group, refs, workspaces, "two survivors");

  // A fourth instance with an empty data directory joins and answers exactly once settled.
  ASSERT_TRUE(group.Start("node-d"));
  const auto t_join = Clock::now();
  ASSERT_TRUE(group.WaitSettled(Millis(120000)));
  std::fprintf(stderr, "[cluster_e2e] a new instance settled in %.1f s\n", Elapsed(t_join));
  ASSERT_TRUE(group.WaitStable(Millis(120000)));  // no rebalance still due
  CheckEveryInstance(group, refs, workspaces, "after a new instance joined");

  // A fifth instance: each partition now lives on three of four instances, and the views of the
  // others are dropped (the instances started with empty data directories keep state per
  // partition).
  const double dropped_before = sum_metric("tally_partitions_dropped_total");
  ASSERT_TRUE(group.Start("node-e"));
  ASSERT_TRUE(group.WaitSettled(Millis(120000)));
  const auto t_drop = Clock::now();
  std::map<std::string, int> idle;
  while (Elapsed(t_drop) < 30) {
    idle = group.IdlePartitions();
    bool none = idle.size() == group.instances().size();
    for (const auto& [id, n] : idle) none = none && n == 0;
    if (none) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  for (const auto& [id, n] : idle) EXPECT_EQ(n, 0) << id << " still keeps idle partitions";
  ASSERT_TRUE(group.WaitSettled(Millis(60000)));
  const double dropped = sum_metric("tally_partitions_dropped_total") - dropped_before;
  std::fprintf(stderr, "[cluster_e2e] five instances: %.0f partitions' views dropped\n", dropped);
  // a, c and d each kept all 12 partitions before; each keeps 9 of them now.
  EXPECT_GE(dropped, 9);
  ASSERT_TRUE(group.WaitStable(Millis(120000)));  // no rebalance still due
  CheckEveryInstance(group, refs, workspaces, "after idle partitions were dropped");

  // Kill node-d: three survivors keep every partition again, some of which they had dropped.
  group.Kill("node-d");
  const auto t_kill2 = Clock::now();
  ASSERT_TRUE(group.WaitSettled(Millis(60000)));
  std::fprintf(stderr, "[cluster_e2e] failover with dropped partitions settled in %.1f s\n",
               Elapsed(t_kill2));
  ASSERT_TRUE(group.WaitStable(Millis(120000)));  // no rebalance still due
  CheckEveryInstance(group, refs, workspaces,
                     "after partitions came back to instances that had dropped them");
}

// An instance restarted on a data directory holding views of partitions it no longer gets (an
// earlier run kept them idle) drops them too, and the group still answers exactly.
TEST(ClusterE2E, AnEarlierRunsIdleViewsAreDroppedAfterARestart) {
  gen::GenOptions o;
  o.seed = 20261208;
  o.events = 4000;
  o.workspaces = 12;
  o.organizations = 3;
  o.users = 120;
  o.end_day = Stack::kToday;
  o.days = 30;
  Dataset data = GenerateDataset(o);
  References refs(data.lines);
  Stack stack;
  stack.keys().push_back(KeySpec::Admin("it-admin", kGroupAdminToken));
  const std::vector<std::string> workspaces = refs.metrics.WorkspacesByActivity();
  ASSERT_TRUE(stack.StartBroker(kGroupPartitions));
  ASSERT_TRUE(WriteKeysFile(stack.dir().File("keys.toml"), stack.keys()));
  Group group(&stack);
  ASSERT_TRUE(stack.Produce(data.lines, data.keys));
  // node-a consumes everything alone, then shares with node-b and keeps the rest idle.
  ASSERT_TRUE(group.Start("node-a", 0, 3600));
  ASSERT_TRUE(group.WaitSettled(Millis(120000)));
  ASSERT_TRUE(group.Start("node-b", 0, 3600));
  ASSERT_TRUE(group.WaitSettled(Millis(120000)));
  const int idle_before = group.IdlePartitions()["node-a"];
  EXPECT_GT(idle_before, 0);

  // Restarted with a short grace, node-a drops every stored partition it is not given.
  group.Kill("node-a");
  ASSERT_TRUE(group.Start("node-a", 0, 1));
  ASSERT_TRUE(group.WaitStable(Millis(120000)));
  auto owned_by = [&](const std::string& id) {
    std::set<int> owned;
    auto r = group.Find(id)->http->Send("GET", "/readyz");
    json j = json::parse(r ? r->body : "{}", nullptr, false);
    for (const json& m : j["details"]["cluster"]["routing"]["members"]) {
      if (m["instance_id"] == id) owned = m["owned"].get<std::set<int>>();
    }
    return owned;
  };
  // Every partition with events that node-a is not given: it held views of each.
  auto expected_drops = [&](const std::set<int>& owned) {
    int n = 0;
    for (int p = 0; p < kGroupPartitions; ++p) {
      auto wm = kafka::Watermarks(stack.bootstrap(), Stack::kTopic, p, 5000);
      n += wm && wm->second > 0 && !owned.contains(p);
    }
    return n;
  };
  double dropped = 0;
  int expected = -1;
  const auto t0 = Clock::now();
  while (Elapsed(t0) < 30) {
    const std::set<int> owned = owned_by("node-a");
    expected = owned.empty() ? -1 : expected_drops(owned);
    auto r = group.Find("node-a")->http->Send("GET", "/metrics");
    if (r) dropped = MetricSum(r->body, "tally_partitions_dropped_total").value_or(0);
    if (expected >= 0 && dropped >= expected) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  std::fprintf(stderr, "[cluster_e2e] restarted node-a dropped %.0f partitions' views (%d due)\n",
               dropped, expected);
  EXPECT_GT(expected, 0);
  EXPECT_GE(dropped, expected);
  ASSERT_TRUE(group.WaitSettled(Millis(60000)));
  ASSERT_TRUE(group.WaitStable(Millis(120000)));  // no rebalance still due
  CheckEveryInstance(group, refs, workspaces, "after a restart dropped an earlier run's views");

  // A graceful stop: node-b stores what it consumed and gives its partitions up; with static
  // membership (an --instance-id) the coordinator moves them once the session times out (3 s
  // here) and node-a, holding no copy of them any more, restores them from the log.
  const auto t_stop = Clock::now();
  group.Kill("node-b", SIGTERM);
  ASSERT_TRUE(group.WaitSettled(Millis(60000)));
  const double handover_s = Elapsed(t_stop);
  std::fprintf(stderr,
               "[cluster_e2e] node-b stopped gracefully; node-a serves everything %.1f s later\n",
               handover_s);
  ASSERT_TRUE(group.WaitStable(Millis(120000)));  // no rebalance still due
  CheckEveryInstance(group, refs, workspaces, "after a graceful stop");
}

// A standby that falls behind the log's retention (its instance paused while the log moved on)
// stops being a standby at the gap, and when its instance later takes the partition over it does
// not serve it: every answer is 503, never a partial count.
TEST(ClusterE2E, AStandbyBehindTheLogsRetentionIsNeverServed) {
  Stack stack;
  stack.keys().push_back(KeySpec::Admin("it-admin", kGroupAdminToken));
  ASSERT_TRUE(stack.StartBroker(1));
  ASSERT_TRUE(WriteKeysFile(stack.dir().File("keys.toml"), stack.keys()));
  std::vector<std::string> lines, keys;
  GenerateEvents(300, 11, &lines, &keys);
  ASSERT_TRUE(stack.Produce(lines, keys));
  Group group(&stack);
  ASSERT_TRUE(group.Start("node-a", 1, -1));
  ASSERT_TRUE(group.Start("node-b", 1, -1));

  // The partition's role and applied offset on `id`, from its /readyz.
  auto partition_on = [&](const std::string& id) -> std::pair<std::string, int64_t> {
    auto r = group.Find(id)->http->Send("GET", "/readyz");
    json j = json::parse(r ? r->body : "{}", nullptr, false);
    if (j.is_discarded()) return {"", -1};
    for (const json& p : j["details"]["ingest"]["partitions"]) {
      if (p["partition"] == 0)
        return {p["role"].get<std::string>(), p["next_offset"].get<int64_t>()};
    }
    return {"", -1};
  };
  auto high = [&] {
    auto wm = kafka::Watermarks(stack.bootstrap(), Stack::kTopic, 0, 5000);
    return wm ? *wm : std::pair<int64_t, int64_t>{-1, -1};
  };
  // Wait for an owner and a caught-up standby.
  std::string owner, standby;
  auto deadline = Clock::now() + std::chrono::seconds(60);
  while (Clock::now() < deadline && standby.empty()) {
    const auto [a_role, a_next] = partition_on("node-a");
    const auto [b_role, b_next] = partition_on("node-b");
    const int64_t hi = high().second;
    if (a_role == "owned" && b_role == "standby" && a_next == hi && b_next == hi) {
      owner = "node-a", standby = "node-b";
    } else if (b_role == "owned" && a_role == "standby" && a_next == hi && b_next == hi) {
      owner = "node-b", standby = "node-a";
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }
  ASSERT_FALSE(standby.empty()) << "no owner with a caught-up standby";

  // The standby's instance pauses while ~13 MB go through the partition: the broker (newest
  // 5 MiB kept) trims what the standby has not read.
  group.Find(standby)->process->Signal(SIGSTOP);
  std::vector<std::string> more, more_keys;
  GenerateEvents(25'000, 12, &more, &more_keys);
  // In chunks the owner catches up with, so that only the paused standby misses events.
  constexpr size_t kChunk = 2000;
  for (size_t at = 0; at < more.size(); at += kChunk) {
    const size_t end = std::min(more.size(), at + kChunk);
    ASSERT_TRUE(stack.Produce({more.begin() + at, more.begin() + end},
                              {more_keys.begin() + at, more_keys.begin() + end}));
    deadline = Clock::now() + std::chrono::seconds(60);
    while (Clock::now() < deadline && partition_on(owner).second != high().second) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  const int64_t standby_next = lines.size();
  ASSERT_GT(high().first, standby_next) << "the log was not trimmed past the standby";
  group.Find(standby)->process->Signal(SIGCONT);

  // It says so, and stops keeping the standby.
  auto trimmed_on = [&](const std::string& id) {
    auto r = group.Find(id)->http->Send("GET", "/metrics");
    return r ? MetricSum(r->body, "tally_log_trimmed_total").value_or(0) : 0;
  };
  deadline = Clock::now() + std::chrono::seconds(60);
  while (Clock::now() < deadline && trimmed_on(standby) < 1) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_GE(trimmed_on(standby), 1) << group.Find(standby)->process->LogTail();
  EXPECT_LE(partition_on(standby).second, standby_next) << "views went on past the gap";

  // The owner read everything: it serves the partition.
  EXPECT_EQ(trimmed_on(owner), 0) << group.Find(owner)->process->LogTail();
  auto metrics_of = [&](const std::string& id, const std::string& ws) {
    return group.Find(id)->http->Send(
        "GET",
        "/api/v1/workspaces/metrics?workspace_uuid=" + UrlEncode(ws) +
            "&entity=agents&metric=executions&aggregation=count&period=90d",
        {{"Authorization", std::string("Bearer ") + kGroupAdminToken}});
  };
  // The paused standby's session expired, so its return rebalances the group; for that moment
  // the owner answers 503 with Retry-After, as a client retries. Once the group has settled it
  // serves every workspace of the partition, in one pass.
  std::set<std::string> workspaces(keys.begin(), keys.end());
  std::string refused;
  int refusals = 0;
  deadline = Clock::now() + std::chrono::seconds(60);
  do {
    refused.clear();
    for (const std::string& ws : workspaces) {
      auto r = metrics_of(owner, ws);
      ASSERT_TRUE(r);
      if (r->status != 200) {
        ASSERT_EQ(r->status, 503) << ws << ": " << r->body.substr(0, 300);
        refused = ws + ": " + r->body.substr(0, 300);
        ++refusals;
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        break;
      }
    }
  } while (!refused.empty() && Clock::now() < deadline);
  EXPECT_EQ(refused, "") << "the owner does not serve its partition";
  std::fprintf(stderr, "[cluster_e2e] the owner served every workspace after %d refusals\n",
               refusals);
  EXPECT_EQ(partition_on(owner).first, "owned");

  // The owner dies; the survivor takes the partition and never serves its partial copy.
  group.Kill(owner);
  deadline = Clock::now() + std::chrono::seconds(60);
  while (Clock::now() < deadline && partition_on(standby).first != "owned") {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  ASSERT_EQ(partition_on(standby).first, "owned") << group.Find(standby)->process->LogTail();
  int answers = 0;
  const auto t0 = Clock::now();
  while (Elapsed(t0) < 5) {
    for (const std::string& ws : workspaces) {
      auto r = metrics_of(standby, ws);
      ASSERT_TRUE(r);
      EXPECT_EQ(r->status, 503) << ws << ": " << r->body.substr(0, 300);
      ++answers;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::fprintf(stderr, "[cluster_e2e] %d answers for the trimmed partition, all 503\n", answers);
  EXPECT_NE(group.Find(standby)->process->LogTail(50'000).find("NOT in the views"),
            std::string::npos);
}

}  // namespace
}  // namespace tally::integration
